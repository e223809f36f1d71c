"""creditsim.training"""
