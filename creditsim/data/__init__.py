"""creditsim.data"""
