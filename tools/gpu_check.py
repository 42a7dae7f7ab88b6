"""Check that the course runs on a GPU: ``python tools/gpu_check.py`` (exits non-zero on any failure).

The lessons are sized for a CPU, but every part of ``course_lib`` should work
unchanged with ``model.to("cuda")`` and ``fit(device="auto")``.  This script
runs one short check per stage on the GPU and compares with the CPU where the
answer must agree.
"""

from __future__ import annotations

import sys
import time

import torch


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    import course_lib as cl
    from course_lib.images import imagenet_view
    from course_lib.training import auto_device, load_trained, train
    from course_lib.zoo import yolov8

    dev = torch.device("cuda")
    print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
    failures = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        print(f"[{'ok' if ok else 'FAIL'}] {name} {detail}")
        if not ok:
            failures.append(name)

    # lesson 00: the pretrained classifier gives the same verdict on both devices
    x = imagenet_view(cl.load_image(cl.sample_images()["chelsea"]))
    model = cl.build_model({"backbone": {"name": "mobilenet_v2", "pretrained": True}, "neck": "gap",
                            "head": {"name": "classification", "pretrained": True}}).eval()
    cpu_logits = model.trace(x).head
    model.to(dev)
    trace = model.trace(x)  # default settings: cuDNN may use TF32 (10-bit mantissa) on recent GPUs
    top = model.head.decode(trace.head)[0][0]
    check("classifier on cuda", trace.head.device.type == "cuda" and top.name == "Egyptian cat",
          f"{top.name} {top.prob:.3f}")
    prob_diff = float((trace.head.cpu().softmax(1) - cpu_logits.softmax(1)).abs().max())
    check("cpu/cuda probabilities agree (TF32 allowed)", prob_diff < 5e-3, f"max diff {prob_diff:.1e}")
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    exact = model.trace(x).head.cpu()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    logit_diff = float((exact - cpu_logits).abs().max())
    check("cpu/cuda logits agree in full fp32", logit_diff < 2e-3, f"max diff {logit_diff:.1e}")

    # lessons 04/09: necks and YOLOv8n
    v8 = yolov8.build_yolov8("n").to(dev).eval()
    with torch.no_grad():
        out = v8(torch.zeros(1, 3, 640, 640, device=dev))
    check("YOLOv8n on cuda", tuple(out.shape) == (1, 84, 8400), str(tuple(out.shape)))
    fpn = cl.build_model({"backbone": "resnet18", "neck": {"name": "pan", "fusion": "concat"},
                          "head": {"name": "detection", "num_classes": 3}}).to(dev)
    t = fpn.trace(torch.rand(3, 128, 128))
    check("PAN + detection head on cuda", all(v.device.type == "cuda" for v in t.neck.values()))

    # lesson 08: a short detector training run picks the GPU and lowers the loss
    t0 = time.perf_counter()
    det, report = train("det_fpn", steps=60, device="cuda", progress=False, evaluate=False, train_images=960)
    losses = report["history"].loss
    check("detector trains on cuda", next(det.parameters()).device.type == "cuda" and
          sum(losses[-10:]) / 10 < sum(losses[:10]) / 10,
          f"loss {sum(losses[:10]) / 10:.3f} -> {sum(losses[-10:]) / 10:.3f} in {time.perf_counter() - t0:.1f} s")

    # lesson 08's pretrained detector recipe: frozen stem, channels-last memory, quality focal loss
    t0 = time.perf_counter()
    mnv2, report = train("det_mnv2_fpn", steps=40, device="cuda", progress=False, evaluate=False, train_images=640)
    losses = report["history"].loss
    stem = list(mnv2.backbone.stages["C1"].parameters())
    check("det_mnv2_fpn recipe on cuda", all(p.grad is None for p in stem) and
          sum(losses[-10:]) / 10 < sum(losses[:10]) / 10,
          f"loss {sum(losses[:10]) / 10:.3f} -> {sum(losses[-10:]) / 10:.3f} in {time.perf_counter() - t0:.1f} s")

    # lesson 10: the multi-task model on cuda
    mt = load_trained("multitask").to(dev)
    mtr = mt.trace(torch.rand(3, 128, 128))
    check("multi-task on cuda", set(mtr.head) == set(mt.heads) and mtr.head["segmentation"].device.type == "cuda")
    check("auto_device picks cuda", auto_device().type == "cuda")
    print(f"{len(failures)} failed" if failures else "all GPU checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
