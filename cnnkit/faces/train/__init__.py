"""Training Siamese face encoders: losses, miners, the binary head, P x K sampling, the loop.

    distances    L2 (plain or squared) and cosine, objects that know whether larger means closer
    losses       TripletMarginLoss, ContrastiveLoss: loss(embeddings, labels, indices_tuple=None)
    miners       all, random, batch-hard, semi-hard: miner(embeddings, labels) -> (a, p, n)
    binary_head  DeepFace's verification head on |f(a)-f(b)| or chi-square pair features
    sampler      PKSampler: P people x K images per batch
    dataset      identity folders with detection and aligned chips cached to disk
    augment      flip, small crops, colour jitter on batches of chips
    models       the small ResNet and the dlib projection (registered for saved encoders)
    checkpoint   checkpoints to resume, and saving in the saved-encoder format
    loop         train(): the loop with per-step logs and per-epoch validation
    runner       fit(): everything `cnnkit faces train` does
"""
