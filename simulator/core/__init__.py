"""simulator/core"""
