"""agents/users"""
