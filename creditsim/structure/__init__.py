"""creditsim.structure"""
