"""Rows of a digits CSV (integers 0..255, comma-separated, a row a line) parsed straight into
uint8 arrays: one pass over the bytes, where pandas makes int64 columns first and the checks then
run over those (about 1.4 s of the tutorial's 1.7 s CSV read)."""

from .codes import NOT_PLAIN, PLAIN
from .jit import kernel


@kernel(nogil=True)
def parse_csv_rows(buf, n_bytes, X, y, first_row, out):
    """The complete lines of buf[:n_bytes] into rows first_row, first_row + 1, ... of X, the first
    cell of each into y when y has room (a label column), until X (or y) is full.

    A plain line is X.shape[1] cells (after a label cell, when y has room) of one to three
    digits, at most 255, separated by commas, ending in a newline (or a carriage return and a
    newline). Sets out[0] = the rows read, out[1] = the bytes of the lines read, out[2] = PLAIN,
    or NOT_PLAIN at the first line that is not such a line (a cell that is not 0..255 in plain
    digits, a row of another width, a space, a quote, an empty line, ...): out[0] and out[1] then
    end before it.
    """
    n_pixels = X.shape[1]
    labelled = y.size > 0
    n_cells = n_pixels + (1 if labelled else 0)
    n_bytes = min(n_bytes, buf.size)  # no index checks in a kernel: stay inside every array
    n_rows = min(X.shape[0], y.size) if labelled else X.shape[0]
    row, line_start = first_row, 0
    out[2] = PLAIN
    while row < n_rows:
        at = line_start
        for c in range(n_cells):
            value, digits = 0, 0
            while at < n_bytes and 48 <= buf[at] <= 57 and digits < 4:
                value = value * 10 + (buf[at] - 48)
                digits += 1
                at += 1
            if at >= n_bytes:  # the line runs past the buffer: the caller brings more
                out[0], out[1] = row - first_row, line_start
                return
            if digits == 0 or digits > 3 or value > 255:
                out[0], out[1], out[2] = row - first_row, line_start, NOT_PLAIN
                return
            separator = buf[at]
            if c < n_cells - 1:
                ok = separator == 44  # ','
            else:
                if separator == 13 and at + 1 < n_bytes:  # '\r\n'
                    at += 1
                    separator = buf[at]
                elif separator == 13:
                    out[0], out[1] = row - first_row, line_start
                    return
                ok = separator == 10  # '\n'
            if not ok:
                out[0], out[1], out[2] = row - first_row, line_start, NOT_PLAIN
                return
            at += 1
            if labelled and c == 0:
                y[row] = value
            else:
                X[row, c - (1 if labelled else 0)] = value
        row += 1
        line_start = at
    out[0], out[1] = row - first_row, line_start
