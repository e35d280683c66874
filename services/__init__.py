"""The five services of the pipeline, one package each."""
