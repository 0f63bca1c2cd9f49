"""
Where the seed CNN looks
========================

Feature maps show what each layer computes; *attribution maps* show which pixels the decision
depended on. featurelens computes them on top of one backend primitive (the gradient of a class
score with respect to the input or a layer), written once in NumPy for every backend: saliency,
SmoothGrad, Integrated Gradients, Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM and occlusion. Then
two standard checks tell which maps to trust: the model-parameter randomization test (Adebayo et
al., 2018) and deletion / insertion curves (Petsiuk et al., 2018).
"""

# %%
# Eight methods side by side
# --------------------------
# Each map explains the predicted class. The CAMs use the default layer for 32x32 networks: the
# last conv layer whose maps are still at least 8x8 (here ``block3_relu2``), upsampled.
import _helpers
import numpy as np

from featurelens import explain
from featurelens import visualize as viz

model = _helpers.seed_model("torch")
data = _helpers.cifar10()
images, labels = data.test_images[:6], data.test_labels[:6]
options = {"smoothgrad": {"samples": 16}, "integrated_gradients": {"steps": 32}}
results = {name: explain.explain(model, images, method=name, **options.get(name, {}))
           for name in explain.METHODS}
names = data.class_names
rows = [f"{names[t]} ({p:.0%})" for t, p in zip(results["gradcam"].targets, results["gradcam"].probabilities)]
fig = viz.methods_grid_figure(images, {name: r.maps for name, r in results.items()}, rows,
                              title="Evidence for the predicted class, eight ways")
ig = results["integrated_gradients"]
print("Integrated Gradients completeness error per image (|sum - (f(x) - f(baseline))| / |...|):",
      np.round(ig.completeness_error, 3))

# %%
# What would make it a cat?
# -------------------------
# The same image explained for every class: Grad-CAM for each target, on one scale.
image = images[:1]
per_class = explain.gradcam(model, np.repeat(image, len(names), axis=0), np.arange(len(names)))
probabilities = model.predict(image)[0]
fig = viz.all_classes_figure(image[0], per_class.maps, names, probabilities, method="Grad-CAM")

# %%
# The most confident mistakes, explained
# --------------------------------------
# Evidence for the wrong class the model chose, beside the evidence for the true class.
test_images, test_labels = data.test_images[:2000], data.test_labels[:2000]
probs = model.predict(test_images)
wrong = viz.confident_mistakes(test_labels, probs, 6)
predicted = probs[wrong].argmax(1)
for_predicted = explain.gradcam(model, test_images[wrong], predicted)
for_true = explain.gradcam(model, test_images[wrong], test_labels[wrong])
fig = viz.mistakes_explained_figure(test_images[wrong], for_predicted.maps, for_true.maps, test_labels[wrong],
                                    predicted, names, probs[wrong], method="Grad-CAM")

# %%
# Can these maps be trusted?
# --------------------------
# The randomization test explains the same images with the same architecture, re-initialized: a
# method whose maps barely change (rank correlation near 1) shows the image, not what the model
# learned. Deletion removes the most important pixels first (a faithful map makes the probability
# fall fast: low AUC); insertion adds them to a blank image first (high AUC is better).
sample = data.test_images[:32]
table = []
curves = {}
for name in ("saliency", "integrated_gradients", "gradcam", "scorecam", "occlusion"):
    check = explain.randomization_check(model, sample, method=name, **options.get(name, {}))
    maps = check.trained
    deletion = explain.deletion_curve(model, sample, maps)
    insertion = explain.insertion_curve(model, sample, maps)
    curves[name] = (deletion, insertion)
    table.append((name, float(np.nanmean(check.spearman)), float(deletion.auc.mean()), float(insertion.auc.mean())))
print(f"{'method':<22} {'randomization rho':>18} {'deletion AUC':>13} {'insertion AUC':>14}")
for name, rho, deletion_auc, insertion_auc in table:
    print(f"{name:<22} {rho:>18.3f} {deletion_auc:>13.3f} {insertion_auc:>14.3f}")
fig = viz.deletion_insertion_figure(curves, title="Deletion (lower is better) and insertion (higher is better)")
