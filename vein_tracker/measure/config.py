"""The options of a comparison: how the two visits are put on an equal footing.

One frozen :class:`AnalysisConfig` is passed down the pipeline; no module flag changes
how a comparison runs. The defaults are the algorithm (:data:`vein_tracker.ALGORITHM_VERSION`);
switching one off is for measuring what it brings (``benchmarks/improvement.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalysisConfig"]


@dataclass(frozen=True)
class AnalysisConfig:
    """How :func:`~vein_tracker.measure.compare` equalises the two visits.

    Attributes
    ----------
    equalise_chroma : bool
        Pass both photos (the baseline and the registered follow-up) through the same
        4:2:0-like chroma low-pass (:func:`vein_tracker.colour.chroma_lowpass`) before
        measuring: a phone JPEG has already lost the fine chroma a thin red vein lives in.
    match_blur : bool
        Blur the sharper photo by the extra blur the registration measured on the other
        (a blurred thin vein reads fainter).
    equalise_quantisation : bool
        When the follow-up is a JPEG (found from its pixels) and the baseline is not one
        of the same or a lower quality, measure the baseline's contrast ``c_b`` on a copy
        brought to the follow-up's capture and passed through JPEG at its quality
        (:func:`vein_tracker.colour.equalise_to_followup`). JPEG's dead zone removes
        low-amplitude detail (a faint vein's chroma on dark skin: ~30 % of it at quality
        81 on brown skin) that no blur or integration recovers; both visits then lose the
        same. The baseline's vein mask is still found on the photo as stored.
    zero_point : bool
        Remove the contrast skin near veins reads of its own from both visits
        (:mod:`vein_tracker.measure.zero_point`).
    """

    equalise_chroma: bool = True
    match_blur: bool = True
    equalise_quantisation: bool = True
    zero_point: bool = True
