"""``wsseg predict INPUT_DIR --out OUT_DIR``: a contract that outside tools score.

For every ``<case>_slice<NNN>.png`` it writes ``<stem>_myocardium.png`` and ``<stem>_fibrosis.png``
(0 = no, 255 = yes) and one ``predictions.csv``. A folder of volumes
(NIfTI/MHA/NRRD, one per case) gives ``<case>_myocardium.nii.gz`` / ``<case>_fibrosis.nii.gz``
with the input's geometry instead; a folder of DICOM files gives the same for each usable series
(named ``series-<hash>``, see :mod:`wsseg.data.dicom`) and a DICOM SEG, ``<case>_seg.dcm``. Every
input also gives its cases' scar burden (:mod:`wsseg.burden`) in ``cases.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsseg import distributed
from wsseg.atomic import staged_folder
from wsseg.burden import BURDEN_COLUMNS, scar_burden
from wsseg.config import Params, Supervision
from wsseg.data.dicom import DicomSeries, list_series, nifti_reference, read_series, write_segmentation
from wsseg.data.readers import SliceRecord, list_slice_images, list_volumes, load_image, read_folder
from wsseg.data.tables import write_csv
from wsseg.data.trust import safe_name
from wsseg.data.volumes import in_plane_spacing, read_volume, volume_case
from wsseg.errors import ConfigError, DataError, excerpt
from wsseg.progress import track
from wsseg.stages.cases import map_cases
from wsseg.stages.predict import Prediction, Predictor
from wsseg.workspace import Workspace

CSV_COLUMNS = ["image", "case_id", "slice_index", "fibrosis_probability", "fibrosis_pixels", "myocardium_pixels"]


@dataclass
class FolderOutput:
    """What ``wsseg predict INPUT_DIR`` writes for one input: masks by file name, CSV rows, the case's burden.

    ``case_row`` (a row of ``cases.csv``) is on one output of each case: a volume's, a series', or
    a case's first PNG slice's.
    """

    masks: dict[str, np.ndarray]  # 0/1 masks: 2D for a PNG, 3D for a volume written with ``reference``'s geometry
    rows: list[list]
    reference: Path | DicomSeries | None = None
    case_row: list | None = None


def predict_folder(
    params: Params,
    ws: Workspace,
    supervision: Supervision,
    input_dir: Path,
    out_dir: Path,
    device: str,
    split: str | None = None,
    pixel_spacing: float | None = None,
    slice_spacing: float | None = None,
) -> Path:
    """The ``wsseg predict`` contract: a folder of slices, volumes or DICOM series in; masks and CSVs out.

    With ``split``, ``input_dir`` is a dataset folder (``cases.csv``) and only that split's slices
    are predicted. ``pixel_spacing`` (mm) is that of PNG slices (default: ``data.pixel_spacing``)
    and ``slice_spacing`` (mm) the distance between their slices, for the burden in mL; volumes and
    DICOM series carry their own. Case by case (:func:`~wsseg.stages.cases.map_cases`): torchrun
    processes share the cases out and rank 0 writes.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    stacks: list[Path] | list[DicomSeries] = []
    if split is not None:
        records = [r for r in read_folder(input_dir) if r.split == split]
        if not records:
            raise DataError(f"{input_dir}/cases.csv has no case in split {excerpt(split)}")
    else:
        stacks = list_volumes(input_dir) or list_series(input_dir)
        records = [] if stacks else list_slice_images(input_dir)
    _check_outputs([_stack_case(s) for s in stacks] + [_output_stem(r) for r in records], out_dir)
    predictor = Predictor(params, ws, supervision, device)
    spacing = pixel_spacing or params.data.pixel_spacing
    outputs = (
        _predict_stacks(predictor, stacks) if stacks else _predict_records(predictor, records, spacing, slice_spacing)
    )
    return _write_outputs(outputs, out_dir, f"wsseg {supervision}-level myocardium and fibrosis")


def _output_stem(record: SliceRecord) -> str:
    """The stem of a slice's output files: its PNG's name, or ``<case>_slice<NNN>`` for a volume's slice."""
    stem = (
        record.image.name.removesuffix(".png")
        if record.z is None
        else f"{record.case_id}_slice{record.slice_index:03d}"
    )
    return safe_name(stem, "output name", str(record.image))


def _check_outputs(stems: list[str], out_dir: Path) -> None:
    """Before any model is loaded: ``out_dir`` can be a folder, and no two inputs share output names."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} exists and is not a folder")
    seen = set()
    for stem in stems:
        if stem.lower() in seen:  # case-insensitive file systems would merge them too
            raise DataError(f"two inputs would both write {stem}_myocardium and {stem}_fibrosis in {out_dir}")
        seen.add(stem.lower())


def _voxel_spacing(
    record: SliceRecord, pixel_spacing: float | None, slice_spacing: float | None
) -> tuple[float, float, float] | None:
    """The ``(slice, row, column)`` spacing (mm) of a record's case, where known, for its burden."""
    if record.series is not None:
        return record.series.spacing
    if record.z is not None:
        return _3d(read_volume(record.image)[1])
    return (slice_spacing, pixel_spacing, pixel_spacing) if slice_spacing and pixel_spacing else None


def _predict_records(
    predictor: Predictor, records: list[SliceRecord], spacing: float | None, slice_spacing: float | None
) -> list[FolderOutput]:
    def predict_case(rows: np.ndarray) -> dict:
        case = [records[i] for i in rows]
        raws = [load_image(r) for r in case]
        result = predictor.predict_raw(raws, np.array([r.case_id for r in case]), [r.spacing or spacing for r in case])
        burden = scar_burden(
            result.myocardium_masks, result.fibrosis_masks, _voxel_spacing(case[0], spacing, slice_spacing)
        )
        outputs = []
        for i, record in enumerate(case):
            stem = _output_stem(record)
            masks = {
                f"{stem}_myocardium.png": result.myocardium_masks[i],
                f"{stem}_fibrosis.png": result.fibrosis_masks[i],
            }
            row = [_csv_row(record.image.name, record.case_id, record.slice_index, result, i)]
            outputs.append(FolderOutput(masks, row, case_row=None if i else burden.row(record.case_id)))
        return {"outputs": outputs}

    return map_cases(np.array([r.case_id for r in records]), predict_case, "predict slices")["outputs"]


def _stack_case(stack: Path | DicomSeries) -> str:
    """The case id of a volume (its file name) or a DICOM series (a hash of its UID)."""
    return stack.case_id if isinstance(stack, DicomSeries) else volume_case(stack)


def _read_stack(stack: Path | DicomSeries) -> tuple[str, np.ndarray, tuple[float, ...]]:
    """A volume's or DICOM series' name in ``predictions.csv``, voxels ``(Z, Y, X)`` and spacing ``(z, y, x)`` mm."""
    if isinstance(stack, DicomSeries):
        return stack.case_id, read_series(stack), stack.spacing
    array, spacing = read_volume(stack)
    if not np.isfinite(array).all():
        raise DataError(f"{stack}: contains NaN or infinite values")
    return stack.name, array, spacing


def _predict_stacks(predictor: Predictor, stacks: list[Path] | list[DicomSeries]) -> list[FolderOutput]:
    def predict_case(rows: np.ndarray) -> dict:
        (stack,) = (stacks[i] for i in rows)
        case = _stack_case(stack)
        name, array, spacing = _read_stack(stack)
        result = predictor.predict_raw(
            list(array), np.array([case] * len(array)), [in_plane_spacing(spacing)] * len(array)
        )
        masks = {
            f"{case}_myocardium.nii.gz": np.stack(result.myocardium_masks),
            f"{case}_fibrosis.nii.gz": np.stack(result.fibrosis_masks),
        }
        burden = scar_burden(masks[f"{case}_myocardium.nii.gz"], masks[f"{case}_fibrosis.nii.gz"], _3d(spacing))
        rows_out = [_csv_row(name, case, z, result, z) for z in range(len(array))]
        return {"outputs": [FolderOutput(masks, rows_out, reference=stack, case_row=burden.row(case))]}

    what = "predict DICOM series" if isinstance(stacks[0], DicomSeries) else "predict volumes"
    return map_cases(np.array([_stack_case(s) for s in stacks]), predict_case, what)["outputs"]


def _3d(spacing: tuple[float, ...]) -> tuple[float, float, float] | None:
    """A ``(z, y, x)`` spacing, or ``None`` for a 2D volume's (no slice spacing) or an unusable one."""
    usable = len(spacing) == 3 and all(np.isfinite(s) and s > 0 for s in spacing)
    return (spacing[0], spacing[1], spacing[2]) if usable else None


@distributed.on_main
def _write_outputs(outputs: list[FolderOutput], out_dir: Path, description: str) -> Path:
    """Write every output's masks, ``predictions.csv`` and ``cases.csv`` into ``out_dir``, all or nothing.

    A DICOM series also gets its DICOM SEG, with ``description`` as its content description.
    """
    import SimpleITK as sitk

    with staged_folder(out_dir) as staging:  # a failure leaves no partial output
        for output in track(outputs, "write masks"):
            reference = _reference_image(output.reference)
            for name, mask in output.masks.items():
                if reference is None:
                    Image.fromarray(mask * 255).save(staging / name)
                    continue
                volume = sitk.GetImageFromArray(mask.reshape(sitk.GetArrayFromImage(reference).shape))
                volume.CopyInformation(reference)
                sitk.WriteImage(volume, str(staging / name))
            if isinstance(output.reference, DicomSeries):
                case = output.reference.case_id
                myocardium, fibrosis = (output.masks[f"{case}_{kind}.nii.gz"] for kind in ("myocardium", "fibrosis"))
                write_segmentation(output.reference, myocardium, fibrosis, staging / f"{case}_seg.dcm", description)
        write_csv(staging / "predictions.csv", CSV_COLUMNS, [row for output in outputs for row in output.rows])
        cases = [output.case_row for output in outputs if output.case_row is not None]
        write_csv(staging / "cases.csv", BURDEN_COLUMNS, cases)
    return out_dir


def _reference_image(reference: Path | DicomSeries | None):
    """The SimpleITK image whose geometry a volume's masks copy; ``None`` for PNG slices."""
    import SimpleITK as sitk

    if isinstance(reference, DicomSeries):
        return nifti_reference(reference)
    return sitk.ReadImage(str(reference)) if reference is not None else None


def _csv_row(image: str, case: str, index: int, result: Prediction, i: int) -> list:
    return [
        image,
        case,
        index,
        f"{result.fibrosis_probability[i]:.6f}",
        int(result.fibrosis_masks[i].sum()),
        int(result.myocardium_masks[i].sum()),
    ]
