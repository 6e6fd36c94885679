"""Video data: decoding, the TFRecord schema, shard writer, dataset adapters, tf.data pipelines."""
