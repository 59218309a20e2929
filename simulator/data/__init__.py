"""simulator/data"""
