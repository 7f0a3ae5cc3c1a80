"""Hand-made files in the LLM calibration study's format (not real data), written by the tests.

Four questions in an MMLU-Pro outputs file and two models' study CSVs with a price table:
small enough to check every imported value by hand. They are written into a temporary
folder at test time, so the repository holds no file named like the public data.
Question 11's MMLU-Pro key (I) differs from the study's (J) on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: relative path -> exact text of each hand-made file
FILES: dict[str, str] = {
    'mmlu_pro/model_outputs_tiny_5shots.json': (
        '[\n'
        ' {"question_id": 21, "question": "Which integer is prime?", "options": ["2", "4", "6", "8", "9"], "answer": "A", "answer_index": 0, "category": "math", "src": "ori_mmlu-high_school_mathematics", "pred": "A", "model_outputs": "The answer is (A)"},\n'
        ' {"question_id": 10, "question": "Who may sign a contract?", "options": ["a minor", "an adult", "a dog", "nobody"], "answer": "B", "answer_index": 1, "category": "law", "src": "ori_mmlu-professional_law", "pred": "B", "model_outputs": "The answer is (B)"},\n'
        ' {"question_id": 20, "question": "What is 1 + 2?", "options": ["1", "2", "3"], "answer": "C", "answer_index": 2, "category": "math", "src": "stemez-Math", "pred": null, "model_outputs": "I am not sure"},\n'
        ' {"question_id": 11, "question": "Which court hears appeals?", "options": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "appellate court"], "answer": "I", "answer_index": 8, "category": "law", "src": "ori_mmlu-professional_law", "pred": "I", "model_outputs": "The answer is (I)"}\n'
        ']\n'
    ),
    'prices.csv': (
        'model,usd_per_m_input,usd_per_m_output,basis\n'
        'model-a,0.1,0.4,hand-made test price\n'
        'model-b,1.0,2.0,hand-made test price\n'
    ),
    'results/mmlu_pro_model-a_eval_all_None.csv': (
        ',category,correct_answer,extracted_answer,verbal_numerical_confidence,logit_perplexity_confidence,verbal_linguistic_confidence,token_length\n'
        '0,law,B,B,0.9,0.8,0.95,120\n'
        '1,law,J,C,0.6,,0.7,300\n'
        '2,math,C,,,,,2048\n'
        '3,math,A,A,1.0,0.99,1.0,45\n'
    ),
    'results/mmlu_pro_model-b_eval_all_None.csv': (
        ',Unnamed: 0,category,correct_answer,extracted_answer,verbal_numerical_confidence,logit_perplexity_confidence,verbal_linguistic_confidence,token_length\n'
        '0,0,law,B,A,0.85,0.7,0.8,80\n'
        '1,1,law,J,J,0.95,0.9,0.9,150\n'
        '2,2,math,C,C,0.99,,1.0,60\n'
        '3,3,math,A,D,0.3,0.5,0.2,90\n'
    ),
}


@dataclass(frozen=True)
class HandMadeStudy:
    """Where the hand-made files were written."""

    root: Path

    @property
    def results(self) -> Path:
        """The study's result CSVs (one per model)."""
        return self.root / "results"

    @property
    def qsrc(self) -> Path:
        """The MMLU-Pro outputs file holding the questions."""
        return self.root / "mmlu_pro"

    @property
    def prices(self) -> Path:
        """The price table of the two hand-made models."""
        return self.root / "prices.csv"


def write_hand_made_study(root: Path) -> HandMadeStudy:
    """Write :data:`FILES` under ``root``; returns their locations."""
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HandMadeStudy(root)
