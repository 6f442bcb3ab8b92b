package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

var (
	timeType       = reflect.TypeFor[time.Time]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
)

// schemaOf returns the JSON Schema of the JSON encoding/json produces for
// values of t: objects with a property per exported field under its json
// name, required unless the field is omitempty or omitzero (a reader must
// expect it to be missing).
func schemaOf(t reflect.Type) (object, error) {
	return schemaIn(t, nil)
}

func schemaIn(t reflect.Type, seen []reflect.Type) (object, error) {
	switch {
	case t == timeType:
		return object{{"type", "string"}, {"format", "date-time"}}, nil
	case t == rawMessageType:
		return object{{"description", "any JSON value"}}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaIn(t.Elem(), seen)
	case reflect.String:
		return object{{"type", "string"}}, nil
	case reflect.Bool:
		return object{{"type", "boolean"}}, nil
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return object{{"type", "integer"}, {"format", "int64"}}, nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return object{{"type", "integer"}, {"format", "int32"}}, nil
	case reflect.Float32, reflect.Float64:
		return object{{"type", "number"}}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return object{{"type", "string"}, {"contentEncoding", "base64"}}, nil
		}
		items, err := schemaIn(t.Elem(), seen)
		if err != nil {
			return nil, err
		}
		return object{{"type", "array"}, {"items", items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map keys must be strings", t)
		}
		values, err := schemaIn(t.Elem(), seen)
		if err != nil {
			return nil, err
		}
		return object{{"type", "object"}, {"additionalProperties", values}}, nil
	case reflect.Struct:
		for _, s := range seen {
			if s == t {
				return nil, fmt.Errorf("%s refers to itself; the catalog's payloads are trees", t)
			}
		}
		return structSchema(t, append(seen, t))
	}
	return nil, fmt.Errorf("%s: no JSON Schema for kind %s", t, t.Kind())
}

func structSchema(t reflect.Type, seen []reflect.Type) (object, error) {
	var props object
	var required []any
	if err := addFields(t, seen, &props, &required); err != nil {
		return nil, err
	}
	s := object{{"type", "object"}}
	if len(props) > 0 {
		s = append(s, field{"properties", props})
	}
	if len(required) > 0 {
		s = append(s, field{"required", required})
	}
	return s, nil
}

func addFields(t reflect.Type, seen []reflect.Type, props *object, required *[]any) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := addFields(ft, seen, props, required); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := schemaIn(f.Type, seen)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		*props = append(*props, field{name, s})
		optional := false
		for _, o := range strings.Split(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		if !optional {
			*required = append(*required, name)
		}
	}
	return nil
}
