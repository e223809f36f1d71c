"""creditsim.simulation"""
