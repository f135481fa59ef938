// Record that one shard of a sharded build (its layers, e.g. "0,2,4") finished; the list says
// which shards are in. One statement, so shards finishing at once each add theirs.
// params: $key, $shard
MATCH (m:Model {key: $key})
SET m.build_shards = CASE WHEN m.build_shards IS NULL THEN [$shard]
                          WHEN $shard IN m.build_shards THEN m.build_shards
                          ELSE m.build_shards + $shard END
RETURN m.build_shards AS shards
