"""simulator/runner"""
