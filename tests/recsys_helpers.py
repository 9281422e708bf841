"""Rating tables shared by the tests of dmlkeras.recsys."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_ratings(num_users: int = 12, num_items: int = 20, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        items = rng.choice(num_items, size=per_user, replace=False)
        times = rng.integers(0, 5, size=per_user)  # many ties on purpose
        for i, t in zip(items, times):
            rows.append((100 + u, 1000 + i, int(rng.integers(1, 6)), int(t)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def block_ratings(
    num_blocks: int = 3, users_per_block: int = 20, items_per_block: int = 15, per_user: int = 8, seed: int = 0
):
    """Users of block b only interact with items of block b."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(num_blocks):
        for u in range(users_per_block):
            user = b * users_per_block + u
            items = b * items_per_block + rng.choice(items_per_block, size=per_user, replace=False)
            for t, i in enumerate(items):
                rows.append((user, int(i), 5, t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
