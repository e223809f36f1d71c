"""creditsim.evaluation"""
