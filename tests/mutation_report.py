"""The mutation score of each module of ``make mutation``, and every mutant that survived.

Reads what ``mutmut run`` recorded (``mutmut results --all true``) and prints, per module, the
mutants killed (a test failed or the mutant hung), survived, reached by no test, and not yet run,
then the surviving mutants not written down as equivalent in :data:`EQUIVALENT`.

Score = (killed + timeout) / (all checked − equivalent). A mutant no test reaches counts against
the score: that code is unguarded.

Run from the repository root after ``mutmut run`` (``make mutation`` does both).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CUDA_ONLY = (
    "the CUDA generators' branch: it cannot run without a GPU (test_rng.py's gpu test covers it "
    "on a GPU machine)"
)
_NUMPY_KEYS = (
    "NumPy's set_state converts the key array to uint32 itself; the keys are < 2**32, exact "
    "in any integer or float64 dtype"
)

#: Surviving mutants that cannot change behaviour here, with the reason (see docs/testing.md).
#: Names follow mutmut's numbering of the current code: re-check them after editing a module.
EQUIVALENT: dict[str, str] = {
    "srgan.rng.x_rng_states__mutmut_13": f"np.asarray(keys, None) keeps uint32: {_NUMPY_KEYS}",
    "srgan.rng.x_rng_states__mutmut_15": f"np.asarray(keys) keeps uint32: {_NUMPY_KEYS}",
    "srgan.rng.x_restore_rng_states__mutmut_10": f"astype(None) gives float64: {_NUMPY_KEYS}",
    **{f"srgan.rng.x_restore_rng_states__mutmut_{n}": _CUDA_ONLY for n in range(14, 21)},
    **{f"srgan.rng.x_rng_states__mutmut_{n}": _CUDA_ONLY for n in range(18, 21)},
    "srgan.ema.xǁGeneratorEMAǁ_average__mutmut_21": (
        "zip(strict=False): AveragedModel always passes two lists of the same length"
    ),
    "srgan.metrics.x_bicubic_upsample__mutmut_4": "align_corners=None is torch's False",
    "srgan.metrics.x_bicubic_upsample__mutmut_8": "align_corners left out is torch's False",
    "srgan.checkpointing.xǁIterationCheckpointǁon_exception__mutmut_3": (
        "getattr(module, 'in_step', None): None is as false as False"
    ),
    "srgan.checkpoint_io.x_load_checkpoint__mutmut_6": "fsspec.open's default mode is 'rb'",
    "srgan.checkpointing.xǁIterationCheckpointǁ_save__mutmut_19": (
        "is_s3(None) is False, so folders are also made for s3:// runs: makedirs(exist_ok) of a "
        "bucket that exists is a no-op, and a missing bucket is refused before training starts "
        "(test_storage_failures.py::test_a_misspelt_run_dir_bucket_is_refused_not_created)"
    ),
    "srgan.checkpointing.xǁIterationCheckpointǁ_save__mutmut_33": (
        "Lightning's Trainer.save_checkpoint writes weights_only=False by default"
    ),
    **{
        f"srgan.checkpointing.x_remove_stale_temporaries__mutmut_{n}": reason
        for n, reason in {
            8: "rsplit('/') without a limit: the same last path element",
            14: "rsplit('/', 2): the same last path element",
            15: "[+1] of a two-part rsplit is its last part; listed paths always hold a '/'",
            10: "rstrip() of whitespace instead of '/': listed file paths end in neither",
            11: "lstrip('/') instead of rstrip('/'): listed file paths do not end in '/'",
            12: "rstrip('XX/XX') also strips trailing X's: no '.last-N.tmp' name ends in X",
            18: "ls(detail=None): the local and S3 filesystems then list names, as detail=False",
            20: "ls() without detail: the local and S3 filesystems list names by default",
        }.items()
    },
    **{
        f"datasets.harmonise.xǁHarmonisationǁapply__mutmut_{n}": (
            "astype(None) is float64: the same integer values, exactly, before the clip and "
            "the uint16 conversion"
        )
        for n in (27, 33)
    },
    "datasets.masks.xǁCloudMaskǁ_choose__mutmut_24": (
        "the separator of the masks found: a refusal lists at most one (there are two kinds, "
        "and the one asked for is missing)"
    ),
    **{
        f"srgan.checkpointing.x_resume_point__mutmut_{n}": (
            "the warning's stacklevel (which caller it names): under mutmut a trampoline adds a "
            "stack frame, so no test run by mutmut can observe it"
        )
        for n in (24, 25)
    },
    **{
        f"srgan.checkpointing.x_finished_under__mutmut_{n}": (
            "None instead of {} for a checkpoint without this callback's state: both give None"
        )
        for n in (3, 5)
    },
    "datasets.store_radiometry.x_scene_radiometry__mutmut_6": (
        "rsplit('/') without a limit: the same last path element"
    ),
    "datasets.store_radiometry.x_scene_radiometry__mutmut_14": (
        "rsplit('/', 2): the same last path element"
    ),
    "datasets.store_radiometry.x_scene_radiometry__mutmut_11": (
        "'XXXX' instead of '' for a scene without source: neither holds a date or baseline"
    ),
    "datasets.store_radiometry.x_scene_radiometry__mutmut_12": (
        "rstrip('XX/XX') also strips trailing X's: no product, granule or tile name ends in X "
        "(MGRS row letters stop at V), and an X is no part of a date or baseline"
    ),
    "datasets.harmonise.xǁHarmonisationǁrestore__mutmut_4": "astype(None) is astype(float64)",
    "datasets.harmonise.x__from_item__mutmut_45": (
        "baseline_tuple('XXXX') is None, as baseline_tuple('') is"
    ),
    "datasets.store_writer.xǁPatchStoreWriterǁ_check_existing__mutmut_4": (
        "open_layout(None, uri) for a missing store: Zarr finds no group and it returns None, "
        "as the original does"
    ),
    "datasets.store_writer.xǁPatchStoreWriterǁcommitted__mutmut_4": (
        "open_layout(None, uri) for a missing store: Zarr finds no group and it returns None, "
        "as the original does"
    ),
    **{
        f"datasets.store_writer.xǁPatchStoreWriterǁ_read_only_tip__mutmut_{n}": (
            "read_only=None/False opens the existing store writable; the readers behind it "
            "only read, and opening an existing store writable creates nothing"
        )
        for n in (11, 15)
    },
    **{
        f"srgan.ema.xǁGeneratorEMAǁ_average__mutmut_{n}": (
            "zip without strict=True: AveragedModel hands over the averaged and the live "
            "buffers of one module structure, always of equal length"
        )
        for n in (17, 20)
    },
    **{
        f"srgan.metrics.xǁCorrectnessShareMetricǁupdate__mutmut_{n}": (
            "an image's three shares rounded to float32 before the float64 sum: a change far "
            "below the float32 result's last bit"
        )
        for n in (34, 37)
    },
    **{
        f"datasets.store_writer.xǁPatchStoreWriterǁ_manifest_in__mutmut_{n}": (
            "a missing versions attr read as None instead of []: both are falsy, prefix(0) "
            "either way"
        )
        for n in (10, 12)
    },
    "datasets.masks.xǁCloudMaskǁ__init____mutmut_10": (
        "the initial band list is replaced for every mask that is read"
    ),
    "datasets.masks.xǁCloudMaskǁ__init____mutmut_33": "read(None) reads every band; an SCL has one",
    **{
        f"datasets.masks.xǁCloudMaskǁread__mutmut_{n}": (
            "float zeros instead of bool: the tiler takes means of the mask, 0.0 either way"
        )
        for n in (8, 10)
    },
    **{
        f"datasets.masks.xǁCloudMaskǁclose__mutmut_{n}": (
            "close() is the context's exit: nothing reads the mask afterwards"
        )
        for n in (1, 2)
    },
}

_LINE = re.compile(r"^\s*(?P<name>[\w.]+\.x[_ǁ]\S*?__mutmut_\d+): (?P<status>.+)$")
KILLED = ("killed", "timeout")


def module_of(mutant: str) -> str:
    """``srgan.checkpointing`` for ``srgan.checkpointing.xǁIterationCheckpointǁ_save__mutmut_3``."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def read_results() -> dict[str, str]:
    """Status of every mutant mutmut generated, by mutant name."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        m["name"]: m["status"].strip()
        for m in (_LINE.match(line) for line in done.stdout.splitlines())
        if m
    }


def main() -> int:
    """Print the per-module table and the unexplained survivors; 1 if a module is under 85 %."""
    results = read_results()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results.items():
        by_module[module_of(name)]["equivalent" if name in EQUIVALENT else status] += 1
    print("| module | mutants | killed | survived | no tests | equivalent | not run | score |")
    print("|---|---|---|---|---|---|---|---|")
    low = False
    for module, counts in sorted(by_module.items()):
        killed = sum(counts[s] for s in KILLED)
        unchecked = counts["not checked"]
        judged = sum(counts.values()) - unchecked - counts["equivalent"]
        score = f"{100 * killed / judged:.1f} %" if judged else "–"
        low |= bool(judged) and killed / judged < 0.85
        print(
            f"| `{module}` | {sum(counts.values())} | {killed} | {counts['survived']} "
            f"| {counts['no tests']} | {counts['equivalent']} | {unchecked} | {score} |"
        )
    unexplained = [
        (name, status)
        for name, status in results.items()
        if status in ("survived", "no tests", "suspicious") and name not in EQUIVALENT
    ]
    if unexplained:
        print(f"\n{len(unexplained)} mutant(s) not killed (show one: mutmut show NAME):")
        for name, status in unexplained:
            print(f"  {name}: {status}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
