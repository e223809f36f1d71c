"""creditsim.evaluation: generative-model metrics, statistical baselines and macro evaluation.

Submodules are imported on use (``from creditsim.evaluation.macro_eval import evaluate_macro``) so that
importing the package stays cheap.
"""
