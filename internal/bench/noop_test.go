package main

import (
	"reflect"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/activities"
)

// The pure-orchestration row is only comparable with the order saga if its
// activities have the real ones' names and signatures.
func TestNoopActivitiesMirrorTheRealOnes(t *testing.T) {
	real := reflect.TypeOf(&activities.Activities{})
	noop := reflect.TypeOf(&noopActivities{})
	var realNames, noopNames []string
	for i := range real.NumMethod() {
		m := real.Method(i)
		if m.Name == "HandleReply" { // the reply consumer's handler, not called by workflows
			continue
		}
		realNames = append(realNames, m.Name)
		nm, ok := noop.MethodByName(m.Name)
		require.True(t, ok, "no no-op for activity %s", m.Name)
		require.Equal(t, m.Type.NumIn(), nm.Type.NumIn(), m.Name)
		for i := 1; i < m.Type.NumIn(); i++ {
			require.Equal(t, m.Type.In(i), nm.Type.In(i), "%s argument %d", m.Name, i)
		}
		require.Equal(t, m.Type.NumOut(), nm.Type.NumOut(), m.Name)
		for i := range m.Type.NumOut() {
			require.Equal(t, m.Type.Out(i), nm.Type.Out(i), "%s result %d", m.Name, i)
		}
	}
	for i := range noop.NumMethod() {
		noopNames = append(noopNames, noop.Method(i).Name)
	}
	slices.Sort(realNames)
	slices.Sort(noopNames)
	require.Equal(t, realNames, noopNames)
}
