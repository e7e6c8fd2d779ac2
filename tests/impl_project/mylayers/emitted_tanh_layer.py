# A torch.autograd.Function emitted by `symcheck backward --emit torch` from the program
#
#     y = W @ x + b; out = sum(tanh(y)^2)
#
# at the shapes W: float[2, 3], x: float[3], b: float[2] (output float[]).
# Its backward is the closed-form gradient with respect to W, x, b that
# symcheck's symbolic engine derived from the program, not a trace of the forward.

import torch


class TanhLayerLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, x, b):
        ctx.save_for_backward(W, x, b)
        y = W @ x + b
        out = torch.sum(torch.tanh(y) ** 2)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        W, x, b = ctx.saved_tensors
        # the program's steps the closed forms use, recomputed from the saved inputs
        y = W @ x + b
        # shared by the gradients
        t1 = torch.tanh(y)
        t2 = 1 - t1 ** 2
        t3 = t2 * t1
        grad_W = grad_x = grad_b = None
        if ctx.needs_input_grad[0]:
            # d out/d W = 2*outer((1 - tanh(W @ x + b)^2)*tanh(W @ x + b), x)
            grad_W = grad_output * (2 * torch.outer(t3, x))
        if ctx.needs_input_grad[1]:
            # d out/d x = 2*(W.T @ ((1 - tanh(W @ x + b)^2)*tanh(W @ x + b)))
            grad_x = grad_output * (2 * (W.T @ t3))
        if ctx.needs_input_grad[2]:
            # d out/d b = 2*(1 - tanh(W @ x + b)^2)*tanh(W @ x + b)
            grad_b = grad_output * (2 * t2 * t1)
        return grad_W, grad_x, grad_b


def tanh_layer_loss(W, x, b):
    """TanhLayerLoss.apply: the program, its backward the closed form."""
    return TanhLayerLoss.apply(W, x, b)
