"""Per-modality preprocessing on Ray Data: loaders for the raw data sets, one stateful actor per
modality (text, image, tabular, series), and the pipeline that writes model-ready Parquet shards.
Serving imports the same actors, so training and serving cannot drift apart."""
