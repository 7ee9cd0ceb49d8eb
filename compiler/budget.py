"""Resource budgets a user sets on the command line, checked before anything is written.

- ``--acc-bits N``: the accumulator width. The numerics need ``wbits + abits + ceil(log2 K) + 1``
  bits for a layer never to overflow (``numerics.acc_bits``); a narrower N is an error naming the
  layer that needs the most, a wider one builds wider accumulators (same integers).
- ``--max-memory SIZE`` and ``--max-bram N``: the on-chip memory the design needs
  (``report.memory``: activations, accumulators, weight ROM, post-processing ROM, tables), in
  bits and in 18 Kb block RAMs. A design over budget is an error that says what takes the memory
  and which options shrink it.
"""

from __future__ import annotations

import dataclasses
import re

from edgehls import ir, report
from edgehls.errors import OptionError
from edgehls.romgen import HwParams
from edgehls.tiler import Schedule, dense_layers

MIN_ACC, MAX_ACC = 2, 64
SIZE_RE = re.compile(r"^(\d+)\s*(|b|Kb|Mb|Gb|B|KB|MB|GB)$")
UNITS = {"": 1, "b": 1, "Kb": 1 << 10, "Mb": 1 << 20, "Gb": 1 << 30,
         "B": 8, "KB": 8 << 10, "MB": 8 << 20, "GB": 8 << 30}
SHRINK = ("prune (--prune), share weights (--share-bits), use fewer bits (--wbits, --abits, "
          "--precision) or a smaller array (--pe)")


def parse_size(text: str) -> int:
    """A memory size in bits: a whole number of bits, or with a unit: Kb, Mb, Gb (binary
    kilo/mega/giga bits) or B, KB, MB, GB (bytes)."""
    m = SIZE_RE.match(text.strip())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"{text!r} is not a memory size: a number of bits >= 1, or with a "
                         "unit, e.g. 2Mb, 256KB")
    return int(m.group(1)) * UNITS[m.group(2)]


def check_acc_bits(bits: int | None) -> None:
    if bits is not None and not MIN_ACC <= bits <= MAX_ACC:
        raise OptionError(f"--acc-bits {bits} is out of range: choose {MIN_ACC}..{MAX_ACC} bits "
                          "(and at least what the model needs)")


def accumulators(g: ir.Graph, p: HwParams, bits: int | None) -> HwParams:
    """``p`` with accumulators ``bits`` wide (``--acc-bits``), or ``p`` when None."""
    check_acc_bits(bits)
    if bits is None or bits == p.ACC_W:
        return p
    if bits < p.ACC_W:
        need = [(n.op.acc_bits, n.name) for n in dense_layers(g)
                if getattr(n.op, "acc_bits", 0) > bits]
        most = max((b for b, _ in need), default=0)
        worst = next(((b, n) for b, n in need if b == most), (p.ACC_W, "a max-pool layer"))
        also = f" (the design as a whole {p.ACC_W})" if worst[0] != p.ACC_W else ""
        raise OptionError(
            f"--acc-bits {bits} is too narrow: layer {worst[1]!r} needs {worst[0]}-bit "
            f"accumulators never to overflow (wbits + abits + ceil(log2 K) + 1){also}; choose "
            f"--acc-bits {p.ACC_W} or more, or fewer bits (--wbits, --abits)")
    return dataclasses.replace(p, ACC_W=bits)


def check(s: Schedule, p: HwParams, max_memory: int | None, max_bram: int | None) -> None:
    """Raise if the design's on-chip memory is over ``max_memory`` bits or ``max_bram`` 18 Kb
    block RAMs."""
    if max_memory is None and max_bram is None:
        return
    mem = report.memory(s, p)
    parts = {k.removesuffix("_bits"): v for k, v in mem.items() if k.endswith("_bits")}
    total = sum(parts.values())
    detail = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in
                       sorted(parts.items(), key=lambda kv: -kv[1]))
    if max_memory is not None and total > max_memory:
        raise OptionError(f"the design needs {total:,} bits of on-chip memory ({detail}), over "
                          f"--max-memory {max_memory:,} bits; {SHRINK}")
    if max_bram is not None and mem["bram18"] > max_bram:
        raise OptionError(f"the design needs {mem['bram18']:,} 18 Kb block RAMs ({detail} bits), "
                          f"over --max-bram {max_bram:,}; {SHRINK}")
