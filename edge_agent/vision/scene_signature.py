"""What the store keeps of a photo to compare its scene later: keypoints, a tiny grey patch of
the vehicle, the grey levels of the ground beside it, and embeddings. No other pixels.

Version 2 adds ``ground``; version 1 blobs (written before) are still read, with ``ground``
None, so a candidate recorded before an upgrade can still be confirmed (the vehicle-presence
check then abstains for that pair and the look check decides alone).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import BadInputError

SIGNATURE_VERSION = 2
READABLE_VERSIONS = (1, 2)
WORK_SIDE = 640  # long side of the working image, whatever the photo's resolution
PATCH_SIDE = 48  # grey vehicle patch kept in the signature


@dataclass(frozen=True, eq=False)
class SceneSignature:
    """One photo's scene, as compared later (coordinates in the working image, long side
    WORK_SIDE)."""

    size: tuple[int, int]  # working (width, height)
    vehicle_box: tuple[float, float, float, float] | None
    points: np.ndarray  # (N, 2) float32, background keypoints
    descriptors: np.ndarray  # (N, 32) uint8 ORB
    vehicle_points: np.ndarray  # (M, 2) float32, keypoints inside the vehicle box
    vehicle_descriptors: np.ndarray  # (M, 32) uint8
    patch: np.ndarray | None  # (PATCH_SIDE, PATCH_SIDE) uint8 grey vehicle patch
    embedding: np.ndarray | None  # (D,) float32 unit vector, vehicle masked out
    vehicle_embedding: np.ndarray | None  # (D,) float32 unit vector of the vehicle crop
    model_id: str | None = None
    ground: tuple[float, ...] | None = None  # quantiles of the grey around the vehicle box

    def __post_init__(self) -> None:
        if self.patch is not None and self.patch.shape != (PATCH_SIDE, PATCH_SIDE):
            raise BadInputError(f"scene signature patch must be {PATCH_SIDE}x{PATCH_SIDE}, got "
                                f"{self.patch.shape}")
        if self.ground is not None and (
                len(self.ground) < 2 or any(not 0.0 <= v <= 255.0 for v in self.ground)
                or any(b < a for a, b in zip(self.ground, self.ground[1:], strict=False))):
            raise BadInputError(f"scene signature ground levels {self.ground} are not rising "
                                "grey levels")

    def embedding_list(self, digits: int = 5) -> list[float] | None:
        """The masked-scene embedding as plain floats, for the report manifest."""
        if self.embedding is None:
            return None
        return [round(float(v), digits) for v in self.embedding]

    def to_bytes(self) -> bytes:
        """A compact, versioned npz blob (no pickle) the store can keep in a BLOB column."""
        header = {"version": SIGNATURE_VERSION, "size": list(self.size),
                  "vehicle_box": list(self.vehicle_box) if self.vehicle_box else None,
                  "model_id": self.model_id,
                  "ground": list(self.ground) if self.ground is not None else None}
        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(json.dumps(header).encode(), np.uint8),
            "points": self.points.astype(np.float32), "descriptors": self.descriptors,
            "vehicle_points": self.vehicle_points.astype(np.float32),
            "vehicle_descriptors": self.vehicle_descriptors,
        }
        if self.patch is not None:
            arrays["patch"] = self.patch
        if self.embedding is not None:
            arrays["embedding"] = self.embedding.astype(np.float16)
        if self.vehicle_embedding is not None:
            arrays["vehicle_embedding"] = self.vehicle_embedding.astype(np.float16)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SceneSignature:
        """Inverse of to_bytes (this version or an older readable one); BadInputError for
        anything else (a damaged or foreign blob, or a version this code does not know)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                header = json.loads(bytes(npz["header"]).decode())
                version = header.get("version")
                if version not in READABLE_VERSIONS:
                    raise BadInputError(f"scene signature version {version} is not one of "
                                        f"{READABLE_VERSIONS}; recompute it from the photo")

                def opt(key: str, dtype: type) -> np.ndarray | None:
                    return npz[key].astype(dtype) if key in npz.files else None

                box = header["vehicle_box"]
                ground = header.get("ground")  # absent in version 1
                return cls(
                    size=(int(header["size"][0]), int(header["size"][1])),
                    vehicle_box=tuple(float(v) for v in box) if box else None,  # type: ignore[arg-type]
                    points=npz["points"].reshape(-1, 2).astype(np.float32),
                    descriptors=npz["descriptors"].reshape(-1, 32).astype(np.uint8),
                    vehicle_points=npz["vehicle_points"].reshape(-1, 2).astype(np.float32),
                    vehicle_descriptors=npz["vehicle_descriptors"].reshape(-1, 32)
                    .astype(np.uint8),
                    patch=opt("patch", np.uint8),
                    embedding=opt("embedding", np.float32),
                    vehicle_embedding=opt("vehicle_embedding", np.float32),
                    model_id=header.get("model_id"),
                    ground=None if ground is None else tuple(float(v) for v in ground),
                )
        except BadInputError:
            raise
        except Exception as exc:  # zip, json and key errors all mean "not a signature"
            raise BadInputError(f"not a scene signature ({type(exc).__name__}); recompute it "
                                "from the photo") from exc
