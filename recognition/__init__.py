"""Face recognition: MTCNN detection, FaceNet embeddings, a gallery, one pipeline."""
