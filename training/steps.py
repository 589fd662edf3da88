"""The training steps, in pipeline order, with their command-line inputs. Standard library only,
so ``hydromon`` can list the steps without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

MANIFEST_INPUT = "a clip manifest (file, or the folder holding manifest.csv)"


@dataclass(frozen=True)
class StepSpec:
    name: str
    module: str
    help: str
    inputs: dict[str, str]  # input name → help; each becomes a --<name> PATH option
    optional: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        """The step's table in the training TOML."""
        return self.name.replace("-", "_")


STEPS = {
    spec.name: spec
    for spec in (
        StepSpec(
            "fetch",
            "training.fetch_catalogue",
            "download the humpback catalogue (or copy a local folder)",
            {},
        ),
        StepSpec(
            "prepare",
            "training.prepare",
            "cut call, noise and window clips; split by recording",
            {"input": "the fetch step's output folder (audio/ + annotations/)"},
        ),
        StepSpec(
            "noise-refine",
            "training.noise_refine",
            "flag noise clips that hold calls (call-vs-noise CNN, folds by recording)",
            {"input": MANIFEST_INPUT},
        ),
        StepSpec(
            "train-denoiser",
            "training.train_denoiser",
            "train the ORCA-CLEAN denoiser (noisy targets, corrupted inputs)",
            {"input": MANIFEST_INPUT},
        ),
        StepSpec(
            "denoise",
            "training.denoise",
            "write the denoised twin of a clip set",
            {"input": MANIFEST_INPUT, "denoiser": "the denoiser checkpoint (.pk)"},
        ),
        StepSpec(
            "train-classifier",
            "training.train_classifier",
            "fine-tune an AST on raw or denoised clips (binary or call-type head)",
            {"input": MANIFEST_INPUT},
        ),
        StepSpec(
            "evaluate",
            "training.evaluate",
            "held-out metrics: zero-shot baseline vs fine-tuned on raw and on denoised audio",
            {
                "input": "the raw clip manifest",
                "classifier": "the fine-tuned classifier (HF folder: train-classifier's best/)",
                "denoised": "the denoised clip manifest",
                "denoised_classifier": "a classifier fine-tuned on denoised clips",
            },
            optional=("denoised", "denoised_classifier"),
        ),
        StepSpec(
            "export",
            "training.export",
            "write a model bundle (classifier, denoiser, bundle.json)",
            {
                "classifier": "the classifier folder (HF format, e.g. train-classifier's best/)",
                "evaluation": "the evaluate step's output folder (metrics.json)",
                "denoiser": "the denoiser .pk, when the chosen model runs on denoised audio",
            },
            optional=("denoiser",),
        ),
    )
}
