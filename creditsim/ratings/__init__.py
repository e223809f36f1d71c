"""creditsim.ratings"""
