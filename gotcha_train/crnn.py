"""The plate reader's network: a small CRNN read by CTC, its greedy check and ONNX export.

Why conv only (about 1.5 MB): one row of features, one frame per 4 input columns, so the
exported model takes any input width and runs in a few milliseconds on one CPU core.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gotcha_train.dataset import CHARSET, INPUT_H, INPUT_W

log = logging.getLogger(__name__)


def build_model(num_classes: int):
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    class PlateCRNN(nn.Module):
        """Conv features pooled to 1 row x W/4 columns, read by CTC."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *block(1, 16), nn.MaxPool2d(2),
                *block(16, 32), nn.MaxPool2d(2),
                *block(32, 64), nn.MaxPool2d((2, 1)),
                *block(64, 96), *block(96, 96), nn.MaxPool2d((6, 1)),
                *block(96, 128), nn.Dropout2d(0.1),
                # context along the row: neighbouring characters disambiguate (a region is
                # followed by digits, a letter sits between digit runs)
                nn.Conv2d(128, 128, (1, 5), padding=(0, 2), bias=False), nn.BatchNorm2d(128),
                nn.ReLU(inplace=True),
            )
            self.head = nn.Conv2d(128, num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.head(self.features(x))  # [B, K, 1, T]
            b, k, _, _ = logits.shape
            return logits.reshape(b, k, -1).permute(0, 2, 1)  # [B, T, K], T = W / 4

    return PlateCRNN()


def load_onnx_weights(model, path: Path) -> None:
    """Start ``model`` (build_model) from an exported ONNX file, for fine-tuning.

    Why: only the ONNX file is kept, and its export folded every batch norm into the convolution
    before it. Each convolution gets the folded weights and its batch norm becomes the identity
    plus the folded bias (running mean 0, variance 1 - eps); fine-tuning keeps the batch norms
    in eval mode (freeze_batch_norm), so what was exported is exactly where training starts.
    """
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf's DecodeError, a missing file: one message for all
        raise ValueError(f"{path} is not a readable ONNX file ({exc})") from exc
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    folded = [(weights[node.input[1]], weights[node.input[2]]) for node in graph.node
              if node.op_type == "Conv"]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(folded) != len(convs) or len(norms) != len(convs) - 1:
        raise ValueError(f"{path} has {len(folded)} convolutions, the network {len(convs)}: "
                         f"it is not an export of gotcha_train.crnn")
    with torch.no_grad():
        for k, conv in enumerate(convs):
            weight, bias = (torch.from_numpy(a.copy()) for a in folded[k])
            if conv.weight.shape != weight.shape:
                raise ValueError(f"{path}: convolution {k} is {tuple(weight.shape)}, the "
                                 f"network's {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            if conv.bias is not None:  # the head
                conv.bias.copy_(bias)
                continue
            norm = norms[k]
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)


def freeze_batch_norm(model) -> None:
    """Batch norms in eval mode (their statistics fixed) while the rest trains."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def ctc_step(model, optimizer, scheduler, ctc, x, targets: list[list[int]],
             bf16: bool = False):
    """One optimiser step of CTC on a batch ``x`` and its token ids; returns the loss.

    Shared by training and fine-tuning so both clip and schedule the same way.
    """
    import torch
    from torch import nn

    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    log_probs = logits.float().log_softmax(-1).permute(1, 0, 2)
    in_len = torch.full((len(targets),), log_probs.shape[0], dtype=torch.long)
    loss = ctc(log_probs, flat, in_len, lengths)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    scheduler.step()
    return loss


def greedy(logits: np.ndarray) -> list[list[int]]:
    out = []
    for seq in logits.argmax(-1):
        ids, prev = [], 0
        for k in seq:
            if k != prev and k != 0:
                ids.append(int(k))
            prev = int(k)
        out.append(ids)
    return out


def evaluate(model, x_val, labels, two_line: np.ndarray) -> tuple[float, float]:
    """Greedy exact-match rate on the held-out synthetic crops: one-line, two-line."""
    import torch

    model.eval()
    rates = []
    with torch.no_grad():
        for flag, width in ((False, INPUT_W), (True, 2 * INPUT_W)):
            rows = np.flatnonzero(two_line == flag)
            hits = 0
            for i in range(0, len(rows), 256):
                part = rows[i:i + 256]
                x = (x_val[part, :, :, :width].float() / 255.0 - 0.5) / 0.5
                preds = greedy(model(x).numpy())
                hits += sum(pred == labels[j] for pred, j in zip(preds, part, strict=True))
            rates.append(hits / max(1, len(rows)))
    return rates[0], rates[1]


def export(model, out: Path) -> None:
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).softmax(-1)

    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, INPUT_H, INPUT_W)
    torch.onnx.export(WithSoftmax(model), dummy, str(out), input_names=["x"],
                      output_names=["probs"],
                      dynamic_axes={"x": {0: "n", 3: "w"}, "probs": {0: "n", 1: "t"}},
                      opset_version=17, dynamo=False)
    charset_path = out.with_suffix(".charset.txt")
    charset_path.write_text("\n".join(CHARSET) + "\n", encoding="utf-8")
    log.info("exported %s (%d bytes) and %s", out, out.stat().st_size, charset_path)
