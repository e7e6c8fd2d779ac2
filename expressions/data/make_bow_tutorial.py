"""Build bow_tutorial.json: the PyTorch "Deep Learning for NLP" tutorial's bag-of-words data.

    python expressions/data/make_bow_tutorial.py      # rewrites bow_tutorial.json beside this script

The vocabulary is every word of the training and test sentences in order of first appearance
(26 words, case-sensitive, split on whitespace, as the tutorial's `sentence.split()`); a
sentence's vector counts each word. Labels follow the tutorial's `label_to_ix`: SPANISH = 0,
ENGLISH = 1.
"""

from __future__ import annotations

import json
from pathlib import Path

TRAIN = [
    ("me gusta comer en la cafeteria", "SPANISH"),
    ("Give it to me", "ENGLISH"),
    ("No creo que sea una buena idea", "SPANISH"),
    ("No it is not a good idea to get lost at sea", "ENGLISH"),
]
TEST = [
    ("Yo creo que si", "SPANISH"),
    ("it is lost on me", "ENGLISH"),
]
LABELS = {"SPANISH": 0, "ENGLISH": 1}


def vocabulary(sentences: list[str]) -> list[str]:
    words: list[str] = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def bow(sentence: str, words: list[str]) -> list[int]:
    counts = [0] * len(words)
    for word in sentence.split():
        counts[words.index(word)] += 1
    return counts


def build() -> dict[str, object]:
    words = vocabulary([s for s, _ in TRAIN + TEST])
    assert len(words) == 26, len(words)

    def examples(pairs: list[tuple[str, str]]) -> dict[str, object]:
        return {"x": [bow(s, words) for s, _ in pairs], "y": [LABELS[label] for _, label in pairs]}

    return {
        "meta": {
            "description": "BoW vectors of the PyTorch NLP tutorial's sentences; x[i] counts word i "
            "of the vocabulary, y is the label",
            "source": "https://pytorch.org/tutorials/beginner/nlp/deep_learning_tutorial.html",
            "labels": LABELS,
            "vocabulary": words,
            "sentences": {"train": [s for s, _ in TRAIN], "test": [s for s, _ in TEST]},
        },
        "train": examples(TRAIN),
        "test": examples(TEST),
    }


def dump(data: dict[str, object]) -> str:
    """JSON with one example per line: readable, and diffs show which sentence changed."""
    lines = ["{"]
    meta = data["meta"]
    assert isinstance(meta, dict)
    lines.append('  "meta": {')
    items = [f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in meta.items()]
    lines.append(",\n".join(items))
    lines.append("  },")
    sets = [k for k in data if k != "meta"]
    for i, name in enumerate(sets):
        arrays = data[name]
        assert isinstance(arrays, dict)
        lines.append(f'  "{name}": {{')
        lines.append('    "x": [')
        rows = [json.dumps(row) for row in arrays["x"]]
        lines.extend(f"      {row}{',' if j < len(rows) - 1 else ''}" for j, row in enumerate(rows))
        lines.append("    ],")
        lines.append(f'    "y": {json.dumps(arrays["y"])}')
        lines.append("  }" + ("," if i < len(sets) - 1 else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == data
    return text


if __name__ == "__main__":
    out = Path(__file__).with_name("bow_tutorial.json")
    out.write_text(dump(build()), encoding="utf-8")
    print(f"wrote {out}")
