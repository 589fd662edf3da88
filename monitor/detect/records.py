"""Who a detection is about and what made it: feed, species and model identities.

These travel inside every message, so they are plain frozen records that the config loader
builds from the config file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedInfo:
    node: str
    display_name: str
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def unknown(cls, node: str) -> FeedInfo:
        """A feed missing from the config still gets messages, named after its node."""
        return cls(node=node, display_name=node)


@dataclass(frozen=True, slots=True)
class Species:
    common_name: str
    scientific_name: str
    itis_tsn: int


HUMPBACK = Species("humpback whale", "Megaptera novaeangliae", 180529)

# Model label name → species. The AudioSet label is mapped to humpback because that is the only
# whale this project listens for; a config can map more labels.
DEFAULT_SPECIES: dict[str, Species] = {
    "humpback": HUMPBACK,
    "Whale vocalization": HUMPBACK,
}


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    name: str
    checksum: str  # e.g. "sha256:…" of the checkpoint file


@dataclass(frozen=True, slots=True)
class PipelineModels:
    classifier: ModelIdentity
    denoiser: ModelIdentity | None = None  # None when the denoiser is switched off

    def as_dict(self) -> dict[str, dict[str, str] | None]:
        def one(model: ModelIdentity | None) -> dict[str, str] | None:
            return None if model is None else {"name": model.name, "checksum": model.checksum}

        return {"classifier": one(self.classifier), "denoiser": one(self.denoiser)}
