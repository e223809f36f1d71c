"""creditsim.cashflows"""
