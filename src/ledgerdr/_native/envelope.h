/* The journal block's field names (QLDB's schema), shared by the block writer (ionhash.c) and the block
 * verifier (journal.c). */
#ifndef LEDGERDR_ENVELOPE_H
#define LEDGERDR_ENVELOPE_H

/* The block envelope's field names, in the order writer._ENVELOPE adds them to a table (exported as
 * ENVELOPE: a test holds the two equal). */
static const char *const ENVELOPE_NAMES[] = {
    "blockAddress", "strandId", "sequenceNo", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
    "previousBlockHash", "entriesHashList", "transactionInfo", "statements", "statement", "startTime",
    "statementDigest", "documents", "tableName", "tableId", "revisions", "hash", "data", "metadata", "id",
    "version", "txTime", "txId",
};
enum {
    F_BLOCK_ADDRESS, F_STRAND_ID, F_SEQUENCE_NO, F_TRANSACTION_ID, F_BLOCK_TIMESTAMP, F_BLOCK_HASH,
    F_ENTRIES_HASH, F_PREVIOUS_BLOCK_HASH, F_ENTRIES_HASH_LIST, F_TRANSACTION_INFO, F_STATEMENTS, F_STATEMENT,
    F_START_TIME, F_STATEMENT_DIGEST, F_DOCUMENTS, F_TABLE_NAME, F_TABLE_ID, F_REVISIONS, F_HASH, F_DATA,
    F_METADATA, F_ID, F_VERSION, F_TX_TIME, F_TX_ID, F_COUNT
};

#endif
