"""Evaluation metrics: mode coverage on toy mixtures, and a trained classifier's verdict on digits.

    >>> from assemble.metrics import mode_stats, digits_report, stacked_report, digit_classifier
"""

from .classifier import DigitClassifier
from .digits import digit_classifier, digits_report, stacked_report
from .toy import mode_stats

__all__ = ["DigitClassifier", "digit_classifier", "digits_report", "mode_stats", "stacked_report"]
