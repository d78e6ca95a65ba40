"""Approximate unlearning: methods that edit a trained model instead of retraining it, and the
membership-inference gate that decides whether the edit may replace retraining."""
