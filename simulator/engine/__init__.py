"""simulator/engine"""
