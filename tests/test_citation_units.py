"""A citation placed after the sentence's full stop still vouches for that sentence."""

from assistant.citations import SentenceVectors, SourceDoc, check_citations
from assistant.testing.embedder import HashEmbedder

SOURCE = SourceDoc(
    n=1, paper_id="p1", title="SegMamba: Long-range Sequential Modeling Mamba",
    url="", abstract="SegMamba is a 3D medical image segmentation model based on Mamba. "
    "It is evaluated on the BraTS2023 dataset.",
)


def _support(text: str) -> float:
    report = check_citations(text, [SOURCE], SentenceVectors(HashEmbedder()), threshold=0.45)
    return report.citations[0].support


def test_citation_after_full_stop_is_checked_like_one_before_it() -> None:
    before = _support("SegMamba is a recipe for Neapolitan pizza [1].")
    after = _support("SegMamba is a recipe for Neapolitan pizza. [1]")
    assert after < 1.0
    assert abs(after - before) < 0.05


def test_supported_sentence_with_trailing_citation_scores_high() -> None:
    assert _support("It is evaluated on the BraTS2023 dataset. [1]") >= 0.9
