"""The AAMI EC57 beat classes and the inter-patient split of de Chazal et al. (2004).

MIT-BIH beat symbols map to five AAMI classes: N (normal, bundle branch blocks,
escapes), S (supraventricular ectopic), V (ventricular ectopic), F (fusion of V
and normal) and Q (paced, fusion of paced, unclassifiable). Non-beat annotations
(rhythm changes, noise, ...) are not beats and have no class.
"""

from __future__ import annotations

import numpy as np

#: The four classes the classifier predicts; Q is reported separately (too few
#: Q beats remain once the paced records are excluded to learn it).
CLASSES = ("N", "S", "V", "F")

AAMI = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V",
    "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}

#: de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7), 2004: the training half ...
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
       "207", "208", "209", "215", "220", "223", "230")
#: ... and the test half; no patient is in both.
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
       "221", "222", "228", "231", "232", "233", "234")
#: Records of paced patients, excluded from both halves (as in AAMI EC57).
PACED = ("102", "104", "107", "217")

#: The reference the issue asks to beat (de Chazal 2004, DS2, in percent).
DE_CHAZAL_2004 = {"N": {"se": 86.9, "ppv": 99.2}, "S": {"se": 75.9, "ppv": 38.5},
                  "V": {"se": 77.7, "ppv": 81.9}, "F": {"se": 89.4, "ppv": 8.6}}


def is_beat(symbol: str) -> bool:
    return symbol in AAMI


def aami_class(symbol: str) -> str | None:
    """'N', 'S', 'V', 'F', 'Q', or None for a non-beat annotation."""
    return AAMI.get(symbol)


def class_index(symbols: list[str] | np.ndarray) -> np.ndarray:
    """Index into CLASSES per symbol; -1 for Q (not trained on)."""
    lookup = {c: i for i, c in enumerate(CLASSES)}
    return np.array([lookup.get(AAMI[s], -1) for s in symbols], dtype=np.int64)
