// The program's batch reader: one thread, started and joined by the command that trains, that prepares the next
// global batch of a training loop's batch source (pl_trainer.h: PlBatchSource) while the current step computes.
//
// Ownership: a PlReaderThread owns its thread, lock and condition; the source it serves is borrowed between attach
// and detach. pl_batch_reader_stop joins the thread.
#ifndef PL_BATCH_READER_H
#define PL_BATCH_READER_H

#include "pl_error.h"
#include "pl_trainer.h"

typedef struct PlReaderThread PlReaderThread;

// Start the thread (idle until a source is attached) and fill *iface with the PlBatchReader the loop calls.
PlStatus pl_batch_reader_start(PlReaderThread **out, PlBatchReader *iface);
void pl_batch_reader_stop(PlReaderThread *r);

#endif
