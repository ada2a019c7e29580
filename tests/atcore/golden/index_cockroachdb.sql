CREATE TABLE index_alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT index_alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE checkin (
    author_did VARCHAR NOT NULL, 
    collection VARCHAR NOT NULL, 
    rkey VARCHAR NOT NULL, 
    cid VARCHAR NOT NULL, 
    rev VARCHAR NOT NULL, 
    lat_e6 INTEGER NOT NULL, 
    lon_e6 INTEGER NOT NULL, 
    h3_r7 BIGINT, 
    h3_r5 BIGINT, 
    h3_r3 BIGINT, 
    place_name VARCHAR NOT NULL, 
    place_category VARCHAR, 
    place_uri VARCHAR, 
    place_locality VARCHAR, 
    place_country VARCHAR, 
    post_uri VARCHAR, 
    post_cid VARCHAR, 
    post_exists BOOLEAN NOT NULL, 
    created_at BIGINT NOT NULL, 
    visited_at BIGINT, 
    indexed_at BIGINT NOT NULL, 
    sort_at BIGINT NOT NULL, 
    visible BOOLEAN NOT NULL, 
    CONSTRAINT pk_checkin PRIMARY KEY (author_did, collection, rkey), 
    CONSTRAINT ck_checkin_lat_range CHECK (lat_e6 BETWEEN -90000000 AND 90000000), 
    CONSTRAINT ck_checkin_lon_range CHECK (lon_e6 BETWEEN -180000000 AND 180000000)
);

CREATE INDEX ix_checkin_sort_at_author_did_collection_rkey ON checkin (sort_at, author_did, collection, rkey) USING HASH;

CREATE INDEX ix_checkin_h3_r7_sort_at_author_did_collection_rkey ON checkin (h3_r7, sort_at, author_did, collection, rkey);

CREATE INDEX ix_checkin_h3_r5_sort_at_author_did_collection_rkey ON checkin (h3_r5, sort_at, author_did, collection, rkey);

CREATE INDEX ix_checkin_h3_r3_sort_at_author_did_collection_rkey ON checkin (h3_r3, sort_at, author_did, collection, rkey);

CREATE INDEX ix_checkin_author_did_sort_at ON checkin (author_did, sort_at);

CREATE INDEX ix_checkin_post_uri ON checkin (post_uri);

CREATE TABLE repo_state (
    did VARCHAR NOT NULL, 
    rev VARCHAR, 
    data_cid VARCHAR, 
    status VARCHAR NOT NULL, 
    sync_status VARCHAR NOT NULL, 
    resync_after BIGINT, 
    updated_at BIGINT NOT NULL, 
    CONSTRAINT pk_repo_state PRIMARY KEY (did)
);

CREATE INDEX ix_repo_state_resync_after ON repo_state (resync_after);

CREATE TABLE source_cursor (
    source VARCHAR NOT NULL, 
    seq BIGINT NOT NULL, 
    updated_at BIGINT NOT NULL, 
    CONSTRAINT pk_source_cursor PRIMARY KEY (source)
);

INSERT INTO index_alembic_version (version_num) VALUES ('0001') RETURNING index_alembic_version.version_num;

-- Running upgrade 0001 -> 0002

CREATE TABLE companion_post (
    author_did VARCHAR NOT NULL, 
    rkey VARCHAR NOT NULL, 
    CONSTRAINT pk_companion_post PRIMARY KEY (author_did, rkey)
);

UPDATE index_alembic_version SET version_num='0002' WHERE index_alembic_version.version_num = '0001';

