"""creditsim.datasets"""
