package main

import (
	yaml "go.yaml.in/yaml/v3"
)

// field is one member of an object.
type field struct {
	Key   string
	Value any
}

// object is a JSON or YAML object that keeps its members in order, so the
// document reads top-down (asyncapi, info, channels, ...) and is the same
// bytes on every run.
type object []field

// MarshalYAML writes the members in order.
func (o object) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range o {
		var v yaml.Node
		if err := v.Encode(f.Value); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Key}, &v)
	}
	return n, nil
}

// get returns the member named key.
func (o object) get(key string) (any, bool) {
	for _, f := range o {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}
