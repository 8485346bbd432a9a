"""Evaluation: FID/KID (Heusel et al. 2017; Bińkowski et al. 2018), IS (Salimans et al. 2016),
PSNR/SSIM (Wang et al. 2004), project-trained domain and label classifiers, and ``gankit eval``."""

import gankit.metrics.adaptation  # noqa: F401  (registers its metric block)
from gankit.metrics.classifier import (
    RELIABLE_ACCURACY,
    ClassifierConfig,
    SmallCNN,
    TrainedClassifier,
    default_cache_dir,
    train_domain_classifier,
    train_label_classifier,
)
from gankit.metrics.evaluate import evaluate_folders, evaluate_model, format_table
from gankit.metrics.fid import feature_statistics, fid_from_features, frechet_distance, kid, mmd2_unbiased
from gankit.metrics.image_quality import psnr, ssim
from gankit.metrics.inception import InceptionExtractor, inception_score
from gankit.metrics.translation import label_preservation

__all__ = [
    "RELIABLE_ACCURACY",
    "ClassifierConfig",
    "InceptionExtractor",
    "SmallCNN",
    "TrainedClassifier",
    "default_cache_dir",
    "evaluate_folders",
    "evaluate_model",
    "feature_statistics",
    "fid_from_features",
    "format_table",
    "frechet_distance",
    "inception_score",
    "kid",
    "label_preservation",
    "mmd2_unbiased",
    "psnr",
    "ssim",
    "train_domain_classifier",
    "train_label_classifier",
]
