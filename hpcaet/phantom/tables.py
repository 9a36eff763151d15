"""Published numbers the phantom and simulator default to.

Source: Tian et al., "3D atomic structure of a MoS2–WSe2 lateral heterojunction"
(the paper in ``shared/seed``), supplementary Tables S1 and S2.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TABLE_S2_NOMINAL", "TABLE_S2_CALIBRATED", "TABLE_S1_B_FACTORS", "TABLE_S1_COUNTS"]

#: Stage readings (alpha about [0,-1,0], beta about [-1,0,0]) of the 12 images [deg].
TABLE_S2_NOMINAL = np.array(
    [
        [0.0, 0.0],
        [-14.3, -22.9],
        [-14.3, 17.1],
        [20.1, 17.1],
        [20.1, -20.1],
        [12.6, -12.6],
        [12.6, 12.6],
        [-12.6, 12.6],
        [-12.6, -12.6],
        [-6.3, -6.3],
        [-6.3, 6.3],
        [6.3, 6.3],
    ]
)

#: Calibrated Euler angles about Z, Y, X of the 12 images [deg].
TABLE_S2_CALIBRATED = np.array(
    [
        [0.3, 1.1, -2.0],
        [0.2, -14.5, 15.9],
        [0.4, -8.3, 8.4],
        [0.3, -0.7, 0.1],
        [-0.3, 12.5, -12.2],
        [-0.6, 19.5, -18.4],
        [-1.0, 24.2, -24.8],
        [0.0, 26.5, 7.8],
        [0.2, 24.5, 20.7],
        [0.3, 19.8, 0.7],
        [0.1, 19.9, 11.8],
        [0.4, 13.8, 3.6],
    ]
)

#: Refined B' factors [Å²] (Table S1).
TABLE_S1_B_FACTORS = {"Mo": 13.7, "S": 12.9, "W": 19.0, "Se": 16.3}

#: Atom counts of the measured heterojunction (Table S1); "vac" = S/Se vacancies.
TABLE_S1_COUNTS = {"Mo": 488, "S": 991, "W": 150, "Se": 257, "vac": 16}
