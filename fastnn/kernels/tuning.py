"""Every number fastnn's speed was tuned by, in one place, each with the reason it has its value
(the measurements are in docs/performance.md). It imports no Numba: the Python side reads it too.
The kernels take these values when they compile, so a change needs a rebuild (fastnn build)."""

# -- the kernels ------------------------------------------------------------------------------
# Examples per block of phase 1 and of prediction: the first layer's tile of W stays in cache
# across a block, and a block's 16 float32 losses fill one cache line.
BLOCK = 16
# Examples per block of phase 1 in a network with a layer after the first whose weights take
# WIDE_BLOCK_MIN_BYTES or more: each worker's share of the batch in one block (a whole number of
# BLOCKs), up to WIDE_BLOCK_MAX. Every block streams those weights from the shared cache or
# memory (twice: forward and back), so fewer, larger blocks save more than their rows' spill from
# L2 costs. Paired epochs (bench.ab, He init), AMD EPYC / Intel Xeon, two threads: blocks of 32
# over 16's, 784-2048-2048-10 at batch 128 0.775 / 0.907, at batch 64 0.877 on AMD;
# 784-1024-1024-10 (4.3 MB a hidden layer) at batch 128 0.992 / 0.915; 784-2048-10 1.007 on AMD.
# Blocks of 64 over 32's: 784-2048-2048-10, batch 128, 0.954 on AMD; on Intel 784-1024-1024-10 at
# batch 128 0.944, at 256 0.943, 784-2048-2048-2048-10 at 256 0.981. Blocks of 128 over 64's on
# Intel at batch 256: 0.970 (1024 wide), 0.994 (2048 wide); one thread, batch 128, 128's over
# 32's: 0.904. For all networks, 784-128-10 took 1.10 on AMD (fewer blocks to share).
WIDE_BLOCK_MAX = 128
WIDE_BLOCK_MIN_BYTES = 4 << 20
# Rows per task when inputs are converted to sparse rows: large enough that taking a task costs
# nothing next to it, small enough to balance two workers.
CHUNK = 512
# Examples per chunk of a large batch (plan CHUNKS): each chunk sums its gradient into a buffer of
# its own, so a batch needs a buffer per chunk; 2,048 keeps the tutorial's full batch (41,000
# examples) to 21 buffers of 100 KB, whose sum costs a few percent of the batch.
CHUNK_EXAMPLES = 2048
# A batch of this many examples or more is shared in chunks: from two chunks on there is work to share.
CHUNKED_MIN_BATCH = 2 * CHUNK_EXAMPLES
# ... unless the chunks' gradient buffers would take more bytes than this (per model: fit_many
# gives each of its models buffers of their own).
CHUNKED_MAX_BYTES = 64 << 20
# transpose_batch asks for the rows this many examples ahead: far enough to hide a miss to memory.
AHEAD = 8
# From this many vectors of first-layer outputs, the first layer's gradient is summed over the
# batch transposed by input unit; below, the transposition costs more than the stores it saves.
TRANSPOSE_MIN_VECTORS = 4
# Rows of W per panel of a dense layer's product (layers.dense_block_forward): a panel's tile
# column (3 vectors wide: 96 KB of float32) stays in a core's second-level cache.
PANEL_ROWS = 512
# Rows of a block from which dense_block_forward packs each panel's tile column into one stream
# before its tiles of 8 rows read it: the copy pays for itself over four tiles and more. The
# forward product alone (bench.products, one core of the Intel Xeon, float32, GFLOP/s), packed /
# read in place: blocks of 128 at 128x1024x1024 127 / 114; blocks of 16 at 64x512x512 105 / 168,
# at 64x256x128 84 / 154.
PACK_MIN_ROWS = 32
# Bytes of each row of D that a dense layer's weight gradient sums over before it moves on to
# the next columns (layers.dense_backward_rows): the batch's slab of D stays in the core's
# second-level cache across all of W's rows, where whole rows of a wide layer (8 KB at 2048
# float32 units) would stream from the shared cache once per four rows of W. bench.products, one
# core, float32, GFLOP/s without blocks / with 1 KB / 2 KB: 128x2048x2048 76 / 83-96 / 83-105,
# 256x1024x1024 77 / 89 / 86-107, 64x1024x1024 82 / 99-107 / 110-111.
GRADIENT_COLUMN_BYTES = 2048
# From this many vectors of a layer's outputs, its input gradient is summed along W's rows
# (layers.dense_block_backward_input); below, the lanes' sums cost more than transposing W
# (bench.products: at 64x512x64, 61 GFLOP/s against 49; at 64x1024x128, 79 against 15).
DOT_MIN_VECTORS = 4
# From this many vectors of a layer's outputs, its products skip ReLU's zeros where most are
# zero (layers.py: dense_block_forward, dense_block_backward_input, dense_backward_rows). The
# checks cost a few percent of a narrower layer's product, where paired runs at 784-256-128-10
# (outputs of 8 vectors) were 3-5% slower with them.
ZERO_SKIP_MIN_VECTORS = 16
# A waiting worker spins this many times (about 30 microseconds: a late peer is usually closer),
# then yields its core this many times (the peer may need this very core), then sleeps this long
# between looks.
SPINS_BEFORE_YIELD = 1000
YIELDS_BEFORE_SLEEP = 1000
SLEEP_MICROSECONDS = 50
# The native build's inlining threshold: the layers' helpers are inlined into their loops; much
# more inlining makes the loops slower again.
INLINING_THRESHOLD = 50

# -- the inputs -------------------------------------------------------------------------------
# Where the first layer's sum splits in two (prepared.balanced_column): the rows it looks at, and
# the share of their non-zero inputs below the split; equal halves give two workers that each
# own one side equal work, and one worker two chains of multiply-adds of equal length.
SPLIT_SAMPLE_ROWS = 1024
SPLIT_SHARE = 0.5

# -- threads ----------------------------------------------------------------------------------
# Multiply-adds per batch from which workers may share the weights: below, the two barriers and
# the rows that cross between the cores each batch cost more than a second core saves.
PARALLEL_MIN_WORK = 500_000
# From this much work per batch (a batch takes milliseconds) sharing pays even in the host's slow
# spells, and timing one worker would cost more than it could save: no timing.
SURE_WORK = 200 * PARALLEL_MIN_WORK
# How long a timed kernel call runs: long enough that waking its threads costs next to nothing,
# short enough that a slow spell of the host costs little before the next call moves.
CALL_SECONDS = 0.02
# Batches a side is first timed on (about a millisecond at 784-10-10).
PROBE_BATCHES = 32
# How much faster than one worker the plan's must be: a tie goes to one, which leaves a core free.
TEAM_MARGIN = 0.95
# How long a time per batch is trusted: what pays moves with where the host places the threads,
# and a side that lost in a slow spell of the host is timed again this soon.
CHOICE_SECONDS = 2.0
# How long a worker waits with no progress from the others before it gives up: longer than any
# one task (milliseconds at the widths fastnn trains), short enough not to look like a hang.
PATIENCE_SECONDS = 10.0
# How often the thread that waits for the workers looks at the stop request.
POLL_SECONDS = 0.05
# Multiply-adds from which a prediction is shared between threads: below, handing a share to a
# second thread costs more than it saves.
PREDICT_MIN_WORK = 10_000_000
