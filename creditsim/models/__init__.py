"""creditsim.models"""
