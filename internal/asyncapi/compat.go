package main

import (
	"fmt"
	"slices"
	"sort"

	yaml "go.yaml.in/yaml/v3"
)

// breakingAdvice ends every incompatibility: how to change a payload
// without breaking its readers.
const breakingAdvice = "a published version must keep its shape: register the type at the next version with an upcaster (events/catalog.go) and keep the old shape in internal/asyncapi/legacy.go"

// incompatibilities compares the payload schemas of the published document
// with those of the current one, version by version, and names every change
// that breaks a reader of a published version: a version that is gone, a
// field removed or retyped, a field that became required.
func incompatibilities(published, current []byte) ([]string, error) {
	pub, err := payloadSchemas(published)
	if err != nil {
		return nil, fmt.Errorf("published document: %w", err)
	}
	cur, err := payloadSchemas(current)
	if err != nil {
		return nil, fmt.Errorf("current document: %w", err)
	}
	var out []string
	for _, id := range sortedKeys(pub) {
		c, ok := cur[id]
		if !ok {
			out = append(out, fmt.Sprintf("%s: published, and no longer in the catalog", id))
			continue
		}
		for _, p := range compareSchemas("", asMap(pub[id]), asMap(c)) {
			out = append(out, id+": "+p)
		}
	}
	return out, nil
}

// payloadSchemas returns components.schemas of an AsyncAPI document.
func payloadSchemas(doc []byte) (map[string]any, error) {
	var d struct {
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	return d.Components.Schemas, nil
}

func compareSchemas(path string, pub, cur map[string]any) []string {
	name := path
	if name == "" {
		name = "the payload"
	} else {
		name = "field " + name
	}
	if pt, ct := pub["type"], cur["type"]; pt != ct {
		return []string{fmt.Sprintf("%s retyped from %v to %v", name, orAny(pt), orAny(ct))}
	}
	if pf, cf := pub["format"], cur["format"]; pf != cf {
		return []string{fmt.Sprintf("%s changed format from %v to %v", name, orAny(pf), orAny(cf))}
	}
	var out []string
	if pi, ok := pub["items"]; ok {
		out = append(out, compareSchemas(path+"[]", asMap(pi), asMap(cur["items"]))...)
	}
	if pa, ok := pub["additionalProperties"]; ok {
		out = append(out, compareSchemas(path+"{}", asMap(pa), asMap(cur["additionalProperties"]))...)
	}
	pp, cp := asMap(pub["properties"]), asMap(cur["properties"])
	for _, k := range sortedKeys(pp) {
		sub := k
		if path != "" {
			sub = path + "." + k
		}
		c, ok := cp[k]
		if !ok {
			out = append(out, fmt.Sprintf("field %s removed", sub))
			continue
		}
		out = append(out, compareSchemas(sub, asMap(pp[k]), asMap(c))...)
	}
	pr, cr := asList(pub["required"]), asList(cur["required"])
	for _, k := range cr {
		if !slices.Contains(pr, k) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			out = append(out, fmt.Sprintf("field %s is required now", sub))
		}
	}
	return out
}

func orAny(v any) any {
	if v == nil {
		return "any"
	}
	return v
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
