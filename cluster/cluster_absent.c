/*
 * cluster/cluster_absent.c — is the purge stream really gone? Asked before a node makes it.
 *
 * Making the stream while the old one still exists replaces it: the old stream's purges that a
 * node has not applied yet, and a queued publish it acknowledged, are in a stream no node binds
 * again (the others see a new stream and count from its last sequence). NATS servers that are
 * recovering a quorum say "stream not found" (10059) for a stream that is there: a meta leader
 * still replaying its metadata does not know the stream's assignment yet, and it answers a
 * stream info request at once, while the stream's own members answer it too, or not yet. A
 * request takes the first answer, so one "not found" proves nothing.
 *
 * So the stream info request is published here by hand and every answer is heard for
 * ABSENT_LISTEN_MS: the stream counts as gone only when answers came and each of them is a
 * well-formed "not found". Anything else (the stream's information, "JetStream system
 * temporarily unavailable" 10008, "no suitable peers", a 503 status with no body, bytes that
 * do not parse) means it may be there: the caller sets up again later and asks once more.
 * A node that bound a stream before also wants ABSENT_CONFIRM such set-ups in a row.
 *
 * Runs on the consumer thread only (cluster.c's set-up).
 */
#include "cluster/cluster_int.h"

#include <jansson.h>
#include <stdio.h>
#include "common/now.h"

#define ABSENT_LISTEN_MS 500
#define ABSENT_CONFIRM 3
#define STREAM_INFO_SUBJECT "$JS.API.STREAM.INFO." CLUSTER_STREAM
#define JS_STREAM_NOT_FOUND 10059

/* a JetStream API answer that says "stream not found"; untrusted bytes */
static int answer_is_not_found(const char *data, int len)
{
    if (data == NULL || len <= 0)
        return 0; /* a status (no responders, 503) carries no body */
    json_t *root = json_loadb(data, (size_t)len, 0, NULL);
    if (root == NULL)
        return 0;
    json_t *err = json_object_get(root, "error");
    json_t *code = err != NULL ? json_object_get(err, "err_code") : NULL;
    int nf = json_is_integer(code) && json_integer_value(code) == JS_STREAM_NOT_FOUND;
    json_decref(root);
    return nf;
}

/* 1 when answers came within ABSENT_LISTEN_MS and every one says "not found"; else 0 */
static int every_answer_not_found(int *answers_out)
{
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    int answers = 0, other = 0;
    if (natsInbox_Create(&inbox) != NATS_OK)
        return 0;
    if (natsConnection_SubscribeSync(&sub, cl.nc, inbox) == NATS_OK &&
        natsConnection_PublishRequest(cl.nc, STREAM_INFO_SUBJECT, inbox, NULL, 0) == NATS_OK) {
        int64_t end = now_mono_ms() + ABSENT_LISTEN_MS;
        for (int64_t left = ABSENT_LISTEN_MS; left > 0; left = end - now_mono_ms()) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, sub, left) != NATS_OK)
                break; /* the time is up (or the connection went) */
            answers++;
            if (!answer_is_not_found(natsMsg_GetData(m), natsMsg_GetDataLength(m)))
                other++;
            natsMsg_Destroy(m);
        }
    }
    if (sub != NULL)
        natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    *answers_out = answers;
    return answers > 0 && other == 0;
}

int cluster_stream_absent(int knew_stream)
{
    static int seen; /* set-ups in a row that found it absent */
    int answers = 0;
    if (!every_answer_not_found(&answers)) {
        if (seen > 0 || answers > 0)
            fprintf(stderr,
                    "edgecache: cluster: the purge stream %s was said not to be found, but not by every server "
                    "(%d answer(s)): not making it\n",
                    CLUSTER_STREAM, answers);
        seen = 0;
        return 0;
    }
    if (knew_stream && ++seen < ABSENT_CONFIRM) {
        fprintf(stderr, "edgecache: cluster: the purge stream %s is not found (%d of %d set-ups); not making it yet\n",
                CLUSTER_STREAM, seen, ABSENT_CONFIRM);
        return 0;
    }
    seen = 0;
    return 1;
}
