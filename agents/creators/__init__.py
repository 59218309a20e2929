"""agents/creators"""
