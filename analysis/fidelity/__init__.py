"""analysis/fidelity"""
