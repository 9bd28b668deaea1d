"""The quicklook's centre crop, collected from blocks of rows and columns as they stream past."""

import numpy as np

from datasets.quicklook import Quicklook

BANDS = ("B02", "B03", "B04", "B08")


def test_blocks_of_columns_give_the_crop_of_the_whole_image():
    """Rows in strips and each strip in blocks of columns (as the tiler hands them over):
    the crop is the image's centre, LR and SR, nodata shown as 0."""
    rng = np.random.default_rng(11)
    width, height, scale = 300, 200, 2
    lr = rng.integers(1, 10000, (4, height, width)).astype(np.float32)
    sr = rng.uniform(1, 10000, (4, height * scale, width * scale)).astype(np.float32)
    invalid = rng.random((height * scale, width * scale)) < 0.1
    look = Quicklook(width, height, scale, BANDS)
    for row in range(0, height, 45):
        rows = slice(row, min(row + 45, height))
        for col in range(0, width, 37):
            cols = slice(col, min(col + 37, width))
            hr_rows = slice(rows.start * scale, rows.stop * scale)
            hr_cols = slice(cols.start * scale, cols.stop * scale)
            look.add(
                row,
                lr[:, rows, cols],
                sr[:, hr_rows, hr_cols],
                invalid[hr_rows, hr_cols],
                lr_col_off=col,
            )
    edge, top, left = 96, (height - 96) // 2, (width - 96) // 2
    np.testing.assert_array_equal(look.lr, lr[:, top : top + edge, left : left + edge])
    crop = (slice(top * scale, (top + edge) * scale), slice(left * scale, (left + edge) * scale))
    np.testing.assert_array_equal(look.sr, np.where(invalid[crop], 0, sr[:, crop[0], crop[1]]))
