package amqp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// TestRedriveRecordedLogsEveryRedriveInTheHeaders redrives a message that
// fails again, twice: the second time it is back in the dead letters, its
// headers show both redrives, who ran them and with which messages.
func TestRedriveRecordedLogsEveryRedriveInTheHeaders(t *testing.T) {
	b, queue, _, _ := deadLetterSetup(t)
	ctx := testCtx(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	res, err := b.conn.RedriveRecorded(ctx, queue, []string{"m2", "m3", "gone"}, RedriveRecord{By: "alice", At: at, Batch: "b1"})
	require.NoError(t, err)
	require.Equal(t, []string{"m2", "m3"}, res.Redriven)
	require.Equal(t, []string{"gone"}, res.NotFound)
	// The consumer still fails them: they come back to the dead letters
	// with the record.
	require.Eventually(t, func() bool { return b.depth(queue+".dlq") == 5 }, 15*time.Second, 20*time.Millisecond)

	res, err = b.conn.RedriveRecorded(ctx, queue, []string{"m2"}, RedriveRecord{By: "bob", At: at.Add(time.Hour), Batch: "b2", Forced: true})
	require.NoError(t, err)
	require.Equal(t, []string{"m2"}, res.Redriven)
	require.Eventually(t, func() bool { return b.depth(queue+".dlq") == 5 }, 15*time.Second, 20*time.Millisecond)

	dls, err := b.conn.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	byID := map[string]DeadLetter{}
	for _, d := range dls {
		byID[d.ID] = d
	}
	require.Equal(t, []RedriveRecord{
		{By: "alice", At: at, Batch: "b1", Count: 3, Messages: []string{"m2", "m3", "gone"}},
		{By: "bob", At: at.Add(time.Hour), Batch: "b2", Count: 1, Messages: []string{"m2"}, Forced: true},
	}, RedriveLog(byID["m2"].Headers))
	require.Len(t, RedriveLog(byID["m3"].Headers), 1)
	require.Empty(t, RedriveLog(byID["m1"].Headers))
	require.Equal(t, 2, byID["m2"].Redrives)
	require.Equal(t, "acme", byID["m2"].Headers["tenant"], "other headers stay")
}

func TestPurgeDeadLettersRemovesOnlyTheChosenOnes(t *testing.T) {
	b, queue, _, _ := deadLetterSetup(t)
	ctx := testCtx(t)
	res, err := b.conn.PurgeDeadLetters(ctx, queue, []string{"m1", "m4", "m9"})
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m4"}, res.Purged)
	require.Equal(t, []string{"m9"}, res.NotFound)
	rest, err := b.conn.ListDeadLetters(ctx, queue, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"m2", "m3", "m5"}, deadLetterIDs(rest))

	_, err = b.conn.PurgeDeadLetters(ctx, queue, nil)
	require.ErrorContains(t, err, "no message ids")
	_, err = b.conn.PurgeDeadLetters(ctx, b.prefix+".nosuch", []string{"x"})
	require.ErrorContains(t, err, "does not exist")
}

func TestRedriveRecordKeepsAFewIDs(t *testing.T) {
	b := newTestBroker(t, testenv.AMQPURL(t))
	queue := b.name("many")
	ch := b.admin
	_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
	require.NoError(t, err)
	_, err = ch.QueueDeclare(queue+".dlq", true, false, false, false, nil)
	require.NoError(t, err)
	p := b.publisher()
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("n%02d", i)
		ids = append(ids, id)
		require.NoError(t, p.Publish(testCtx(t), Message{RoutingKey: queue + ".dlq", ID: id, Body: []byte("x")}))
	}
	res, err := b.conn.RedriveRecorded(context.Background(), queue, ids, RedriveRecord{By: "ops", Batch: "big"})
	require.NoError(t, err)
	require.Len(t, res.Redriven, 30)
	require.Eventually(t, func() bool { return b.depth(queue) == 30 }, 15*time.Second, 20*time.Millisecond)
	d, ok, err := ch.Get(queue, true)
	require.NoError(t, err)
	require.True(t, ok)
	log := RedriveLog(d.Headers)
	require.Len(t, log, 1)
	require.Equal(t, 30, log[0].Count)
	require.Len(t, log[0].Messages, maxLoggedIDs)
}
