"""
Predictions, right and wrong
============================

What the trained model predicts on test images it never saw, how sure it is, which classes it
confuses, and the mistakes it is most confident about.
"""

# %%
import _helpers

from featurelens import visualize as viz

model = _helpers.seed_model("torch")
data = _helpers.cifar10()
probs = model.predict(data.test_images)          # (10000, 10), rows sum to 1
print("test accuracy:", (probs.argmax(1) == data.test_labels).mean())

# %%
# A grid of predictions
# ---------------------
first = slice(0, 24)
fig = viz.predictions_figure(viz.to_display(data.test_images[first]), data.test_labels[first],
                             probs[first], data.class_names)

# %%
# Top-5 probabilities
# -------------------
few = slice(0, 4)
fig = viz.topk_figure(viz.to_display(data.test_images[few]), probs[few], data.class_names, data.test_labels[few])

# %%
# Confusion matrix and per-class accuracy
# ---------------------------------------
evaluation = model.evaluate(data.test_images, data.test_labels)
fig = viz.confusion_figure(evaluation.confusion, data.class_names)

# %%
# The most confident mistakes
# ---------------------------
wrong = viz.confident_mistakes(data.test_labels, probs, 18)
fig = viz.predictions_figure(viz.to_display(data.test_images[wrong]), data.test_labels[wrong], probs[wrong],
                             data.class_names, title="The most confident mistakes")
