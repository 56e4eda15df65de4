"""From pixels to emotions: face detection (`faces/`), the detect → crop → classify `pipeline`,
classifiers (the CNN `predictor`, the ONNX Runtime predictor in `onnx`, MediaPipe `blendshapes`),
`averaging` (test-time views and ensembles, shared by both engines), `classifiers` (loading any
run's classifier and choosing its engine), `export` (ONNX export of a
run), `explain` (Grad-CAM), `images`, `annotate`, the webcam's `live` analyzer, `video` files and
their `face_tracks`. Imports the layers below it (core to runs), never training or jobs; the ONNX
Runtime path (`onnx`, `averaging`, `pipeline`, `classifiers`) imports no PyTorch, pandas or scikit-learn.
"""
