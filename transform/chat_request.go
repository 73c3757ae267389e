package transform

import (
	"strings"

	"github.com/tidwall/gjson"
)

// What the provider translators share of reading an OpenAI chat request.

// chatRequest holds the top-level fields of an OpenAI chat request that the
// translations read (each reads the ones its provider has).
type chatRequest struct {
	messages, tools, toolChoice, parallel, stop       gjson.Result
	maxCompletion, maxTokens, temperature, topP, topK gjson.Result
	n, logprobs, responseFormat, user                 gjson.Result
	presence, frequency, seed                         gjson.Result
}

// readChatRequest finds those fields in a valid JSON object (ParseRequest
// checked it) in one pass.
func readChatRequest(body []byte) chatRequest {
	var c chatRequest
	gjson.Parse(unsafeString(body)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "messages":
			c.messages = v
		case "tools":
			c.tools = v
		case "tool_choice":
			c.toolChoice = v
		case "parallel_tool_calls":
			c.parallel = v
		case "stop":
			c.stop = v
		case "max_completion_tokens":
			c.maxCompletion = v
		case "max_tokens":
			c.maxTokens = v
		case "temperature":
			c.temperature = v
		case "top_p":
			c.topP = v
		case "top_k":
			c.topK = v
		case "n":
			c.n = v
		case "logprobs":
			c.logprobs = v
		case "response_format":
			c.responseFormat = v
		case "user":
			c.user = v
		case "presence_penalty":
			c.presence = v
		case "frequency_penalty":
			c.frequency = v
		case "seed":
			c.seed = v
		}
		return true
	})
	return c
}

// toolCallInput checks an assistant tool call's id, name and arguments and
// returns the arguments as a JSON object ("{}" when empty).
func toolCallInput(id, name, args gjson.Result, i, j int) (string, *Error) {
	switch {
	case id.Type != gjson.String || id.Str == "":
		return "", fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_calls[%d].id", i, j)
	case name.Type != gjson.String || name.Str == "":
		return "", fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_calls[%d].function.name", i, j)
	case args.Exists() && args.Type != gjson.String && args.Type != gjson.Null:
		return "", fieldError("invalid_type", "must be a string of JSON", "messages[%d].tool_calls[%d].function.arguments", i, j)
	}
	input := strings.TrimSpace(args.Str)
	if input == "" {
		input = "{}"
	}
	if !gjson.Valid(input) || input[0] != '{' {
		return "", fieldError("invalid_value", "must be a JSON object", "messages[%d].tool_calls[%d].function.arguments", i, j)
	}
	return input, nil
}
